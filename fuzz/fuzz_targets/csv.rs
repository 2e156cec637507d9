//! The CSV reader on arbitrary bytes, predicting column `y`; the first byte picks class labels
//! or real targets and the test fraction.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, text)) = data.split_first() else { return };
    let classes = mode & 1 == 1;
    let test_fraction = f64::from(mode >> 1) / 256.0;
    if let Ok(d) =
        gradscope::data::csv::parse(std::path::Path::new("fuzz.csv"), text, "y", classes, 0, test_fraction)
    {
        assert!(!d.train.is_empty());
        assert_eq!(d.train.x.nrows(), d.train.y.len());
    }
});
