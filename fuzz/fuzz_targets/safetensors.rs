//! The safetensors weights reader (`probe --weights`) on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(w) = gradscope::io::weights::parse(std::path::Path::new("fuzz.safetensors"), data) {
        let sizes = w.sizes();
        assert_eq!(sizes.len(), w.layers.len() + 1);
    }
});
