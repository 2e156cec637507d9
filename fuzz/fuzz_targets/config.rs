//! A config file's text: parsed and, when it parses, checked and resolved.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(config) = gradscope::config::Config::from_toml(text, "fuzz.toml") {
        if let Ok(spec) = config.resolve() {
            // a resolved config is saved beside the run and read back: it must round-trip
            let again = gradscope::config::Config::from_toml(&config.resolved(&spec).to_toml(), "resolved").unwrap();
            assert_eq!(again.resolve().unwrap(), spec);
        }
    }
});
