//! Body decoders: any bytes under any supported Content-Type and Content-Encoding, no
//! panic, output within `max_body`; an undecodable body is an error (uninspectable).
#![no_main]

use libfuzzer_sys::fuzz_target;
use permeable::engine::decode;

const TYPES: &[&str] = &[
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=B",
    "multipart/form-data; boundary=\"--x\"",
    "text/plain",
    "application/octet-stream",
    "",
];
const CODINGS: &[Option<&str>] = &[None, Some("gzip"), Some("deflate"), Some("br"), Some("zstd"), Some("gzip, br")];
const MAX_BODY: usize = 256 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let ct = TYPES[usize::from(selector & 0x07) % TYPES.len()];
    let ce = CODINGS[usize::from(selector >> 3) % CODINGS.len()];
    if let Ok(decoded) = decode::decode_body(Some(ct), ce, body, MAX_BODY) {
        assert!(decoded.raw.len() <= MAX_BODY);
        let fields = decode::all_fields(&decode::Inputs::body(&decoded));
        for f in fields {
            let _ = f;
        }
        // Untouched, the body re-encodes to the same decompressed bytes.
        if let Ok(again) = permeable::engine::redact::rewrite_body(&decoded, &[]) {
            let round = decode::decode_body(Some(ct), ce, &again, MAX_BODY).expect("re-encoded body decodes");
            assert_eq!(round.raw, decoded.raw);
        }
    }
    if let Ok(text) = std::str::from_utf8(body) {
        let _ = decode::parse_json(text);
    }
    let _ = decode::parse_form(body);
    let _ = decode::parse_multipart(body, "B");
});
