//! `application/x-www-form-urlencoded` bodies, which OWT's management API accepts beside
//! JSON: flat `key=value` pairs become a JSON object of strings. Written by hand because it
//! is a dozen lines and the only use of percent-decoding in the portal.

use serde_json::{Map, Value};

pub fn parse(body: &[u8]) -> Result<Value, String> {
    let text = std::str::from_utf8(body).map_err(|_| "form body is not UTF-8".to_string())?;
    let mut object = Map::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        object.insert(decode(key)?, Value::String(decode(value)?));
    }
    Ok(Value::Object(object))
}

fn decode(text: &str) -> Result<String, String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut input = text.bytes();
    while let Some(byte) = input.next() {
        match byte {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex: Vec<u8> = input.by_ref().take(2).collect();
                let value = std::str::from_utf8(&hex)
                    .ok()
                    .filter(|h| h.len() == 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad percent escape in form body: {text:?}"))?;
                bytes.push(value);
            }
            other => bytes.push(other),
        }
    }
    String::from_utf8(bytes).map_err(|_| "form body is not UTF-8".to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn decodes_pairs() {
        let value = super::parse(b"name=my+room&x=%C3%A9%26").unwrap();
        assert_eq!(value, serde_json::json!({"name": "my room", "x": "é&"}));
        assert!(super::parse(b"a=%G1").is_err());
        assert!(super::parse(b"a=%4").is_err());
    }
}
