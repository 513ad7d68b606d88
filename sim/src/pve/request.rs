//! Turns an HTTP request's query string and body (form-encoded, JSON, or
//! multipart for uploads) into raw `(name, value)` parameters, as pveproxy
//! accepts them. Pure: no I/O.

use memchr::memmem;
use serde_json::Value;
use sha2::{Digest, Sha256, Sha512};

use super::error::ApiError;

/// `%XX` escapes decoded, as Perl's `uri_unescape` does: pveproxy's
/// reading of the ticket cookie and of path segments (a volume id such as
/// `local:vztmpl/x.tar.zst` travels as `local%3Avztmpl%2Fx.tar.zst`).
/// Malformed escapes stay as they are.
pub fn uri_unescape(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

/// The file part of an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedFile {
    /// The file name the client gave.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 (hex).
    pub sha256: String,
    /// SHA-512 (hex).
    pub sha512: String,
    /// The bytes.
    pub data: Vec<u8>,
}

/// The parameters of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawRequest {
    /// Parameters in arrival order (arrays repeat their name).
    pub params: Vec<(String, String)>,
    /// The uploaded file, for multipart bodies.
    pub upload: Option<UploadedFile>,
}

fn bad_body(msg: impl Into<String>) -> ApiError {
    ApiError::status(400, msg)
}

/// Parse query and body.
pub fn parse(
    query: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<RawRequest, ApiError> {
    let mut out = RawRequest::default();
    if let Some(q) = query {
        out.params.extend(
            form_urlencoded::parse(q.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())),
        );
    }
    if body.is_empty() {
        return Ok(out);
    }
    let ct = content_type.unwrap_or("application/x-www-form-urlencoded");
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/json" => {
            let v: Value = serde_json::from_slice(body)
                .map_err(|e| bad_body(format!("malformed JSON body: {e}")))?;
            let Value::Object(map) = v else {
                return Err(bad_body("JSON body must be an object"));
            };
            for (k, v) in map {
                match v {
                    Value::Null => {}
                    Value::Array(items) => {
                        for i in items {
                            out.params.push((k.clone(), scalar(&i)));
                        }
                    }
                    other => out.params.push((k, scalar(&other))),
                }
            }
        }
        "multipart/form-data" => {
            let boundary = ct
                .split(';')
                .filter_map(|p| p.trim().strip_prefix("boundary="))
                .next()
                .map(|b| b.trim_matches('"').to_string())
                .ok_or_else(|| bad_body("multipart body without boundary"))?;
            parse_multipart(&boundary, body, &mut out)?;
        }
        _ => out
            .params
            .extend(form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned()))),
    }
    Ok(out)
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => u8::from(*b).to_string(),
        other => other.to_string(),
    }
}

fn parse_multipart(boundary: &str, body: &[u8], out: &mut RawRequest) -> Result<(), ApiError> {
    let delim = format!("--{boundary}");
    let finder = memmem::Finder::new(delim.as_bytes());
    let starts: Vec<usize> = finder.find_iter(body).collect();
    for pair in starts.windows(2) {
        let part = &body[pair[0] + delim.len()..pair[1]];
        let part = part.strip_prefix(b"\r\n").unwrap_or(part);
        let part = part.strip_suffix(b"\r\n").unwrap_or(part);
        let split = memmem::find(part, b"\r\n\r\n")
            .ok_or_else(|| bad_body("multipart part without headers"))?;
        let headers = String::from_utf8_lossy(&part[..split]).to_string();
        let data = &part[split + 4..];
        let disp = headers
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))
            .ok_or_else(|| bad_body("multipart part without Content-Disposition"))?;
        let attr = |name: &str| {
            disp.split(';')
                .filter_map(|a| a.trim().strip_prefix(&format!("{name}=")))
                .next()
                .map(|v| v.trim_matches('"').to_string())
        };
        let name = attr("name").ok_or_else(|| bad_body("multipart part without a name"))?;
        match attr("filename") {
            Some(file_name) => {
                out.params.push((name, file_name.clone()));
                out.upload = Some(UploadedFile {
                    name: file_name,
                    size: data.len() as u64,
                    sha256: hex::encode(Sha256::digest(data)),
                    sha512: hex::encode(Sha512::digest(data)),
                    data: data.to_vec(),
                });
            }
            None => out
                .params
                .push((name, String::from_utf8_lossy(data).to_string())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_unescape_decodes_escapes_and_keeps_malformed_ones() {
        assert_eq!(uri_unescape("local%3Avztmpl%2Fx"), b"local:vztmpl/x");
        assert_eq!(uri_unescape("a%2+1%zz%"), b"a%2+1%zz%");
    }

    #[test]
    fn form_json_and_multipart() {
        let r = parse(Some("a=1&b=x%20y"), None, b"c=3&c=4").expect("form");
        assert_eq!(r.params.len(), 4);
        assert_eq!(r.params[1], ("b".into(), "x y".into()));
        let r = parse(
            None,
            Some("application/json"),
            br#"{"n":5,"t":true,"l":["p","q"]}"#,
        )
        .expect("json");
        assert!(r.params.contains(&("t".into(), "1".into())));
        assert!(r.params.contains(&("l".into(), "q".into())));
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"content\"\r\n\r\nvztmpl\r\n--XX\r\nContent-Disposition: form-data; name=\"filename\"; filename=\"t.tar.zst\"\r\nContent-Type: application/octet-stream\r\n\r\nDATA\r\n--XX--\r\n";
        let r = parse(None, Some("multipart/form-data; boundary=XX"), body).expect("multipart");
        assert_eq!(
            r.params,
            vec![
                ("content".into(), "vztmpl".into()),
                ("filename".into(), "t.tar.zst".into())
            ]
        );
        assert_eq!(r.upload.map(|u| u.size), Some(4));
    }
}
