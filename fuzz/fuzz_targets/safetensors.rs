//! The safetensors weights reader (`probe --weights`) on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.safetensors");
    if let Ok(w) = gradscope::io::weights::parse(path, data) {
        assert!(w.sizes().len() >= 2);
        // building the network and filling it from the file must not panic either
        let arch = w.arch.unwrap_or_default();
        let _ = w.to_mlp_with::<f32>(gradscope::nn::Activation::Tanh, arch, path);
    }
});
