//! What the sandbox's tests share: an HTTP agent shaped like the real clients' and JSON bodies.

use serde_json::Value;

pub(crate) use sandbox::launch::client_agent as agent;

/// The response body as JSON (`Null` when empty); panics with the text when it is not JSON.
pub(crate) fn body_json(response: &mut ureq::http::Response<ureq::Body>) -> Value {
    let text = response.body_mut().read_to_string().expect("body");
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }
}

/// SHA-1 of `data`, lowercase hex.
pub(crate) fn sha1_hex(data: &[u8]) -> String {
    use sha1::Digest;
    hex::encode(sha1::Sha1::digest(data))
}
