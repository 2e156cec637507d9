//! The IDX reader (plain or gzipped) on arbitrary bytes: an error or an array, never a panic,
//! a hang or an allocation beyond what the bytes hold.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(idx) = gradscope::data::idx::decode(std::path::Path::new("fuzz.idx"), data) {
        assert_eq!(idx.data.len(), idx.dims.iter().product::<usize>());
    }
});
