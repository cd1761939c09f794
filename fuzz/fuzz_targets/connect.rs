//! CONNECT and request-target parsing: any bytes, no panic; an accepted target is a
//! well-formed host name or IP literal with a non-zero port.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = permeable::proxy::front::has_bare_lf(data);
    if let Ok((host, port)) = permeable::proxy::front::parse_connect(data) {
        assert!(port != 0);
        assert!(!host.is_empty() && host.len() <= 253);
        assert_eq!(host, host.to_ascii_lowercase());
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = permeable::config::split_host_port(text);
    }
});
