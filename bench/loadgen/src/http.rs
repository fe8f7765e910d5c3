//! A minimal blocking HTTP/1.1 client over `TcpStream`, enough for WHIP/WHEP and Janus's REST API
//! on loopback: one request per connection (`Connection: close`), Content-Length or chunked
//! bodies. Not a general client: no TLS, no redirects, no keep-alive.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Responses larger than this are refused (an SDP answer or a Janus event batch is a few KiB).
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `http://host:port` split into the address to connect to and the Host header.
#[derive(Debug, Clone)]
pub struct Origin {
    pub address: SocketAddr,
    pub host: String,
    /// Path prefix from the URL, without a trailing slash (`/janus` or empty).
    pub base_path: String,
}

impl Origin {
    pub fn parse(url: &str) -> Result<Origin, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("only http:// URLs are supported: {url}"))?;
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let address = host
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host} resolves to nothing"))?;
        if !address.ip().is_loopback() {
            return Err(format!(
                "{host} is not a loopback address; the benchmark stays on this machine"
            ));
        }
        Ok(Origin {
            address,
            host: host.to_owned(),
            base_path: path.trim_end_matches('/').to_owned(),
        })
    }

    /// Sends one request to `base_path + path`; `timeout` bounds connecting and each read/write.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
        timeout: Duration,
    ) -> io::Result<Response> {
        let mut stream = TcpStream::connect_timeout(&self.address, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        let mut head = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: */*\r\nContent-Length: {}\r\n",
            self.base_path,
            self.host,
            body.len()
        );
        if let Some(content_type) = content_type {
            head.push_str(&format!("Content-Type: {content_type}\r\n"));
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        stream.write_all(&request)?;
        let mut raw = Vec::with_capacity(8 * 1024);
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&chunk[..n]);
            if raw.len() > MAX_RESPONSE_BYTES {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "response too large",
                ));
            }
            if response_complete(&raw) {
                break;
            }
        }
        parse_response(&raw)
    }
}

/// Whether `raw` holds a whole response by its own framing, so we need not wait for the close.
fn response_complete(raw: &[u8]) -> bool {
    let Some(end) = find(raw, b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let body = &raw[end + 4..];
    if let Some(length) = head.lines().find_map(|l| l.strip_prefix("content-length:")) {
        return length
            .trim()
            .parse::<usize>()
            .is_ok_and(|n| body.len() >= n);
    }
    if head.contains("transfer-encoding: chunked") {
        return find(body, b"0\r\n\r\n").is_some_and(|i| i == 0 || body[..i].ends_with(b"\r\n"));
    }
    false
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

fn parse_response(raw: &[u8]) -> io::Result<Response> {
    let end = find(raw, b"\r\n\r\n").ok_or_else(|| invalid("response without a header end"))?;
    let head =
        std::str::from_utf8(&raw[..end]).map_err(|_| invalid("response head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| invalid("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body)?;
    } else if let Some((_, length)) = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        let length: usize = length.parse().map_err(|_| invalid("bad Content-Length"))?;
        body.truncate(length);
    }
    let body = String::from_utf8(body).map_err(|_| invalid("body is not UTF-8"))?;
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len());
    loop {
        let line_end = find(data, b"\r\n").ok_or_else(|| invalid("truncated chunk size"))?;
        let size_text =
            std::str::from_utf8(&data[..line_end]).map_err(|_| invalid("bad chunk size"))?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| invalid("bad chunk size"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err(invalid("truncated chunk"));
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_content_length_response_with_headers() {
        let raw =
            b"HTTP/1.1 201 Created\r\nLocation: /whip/r/abc\r\nContent-Length: 5\r\n\r\nv=0\r\n";
        assert!(response_complete(raw));
        let response = parse_response(raw).expect("parses");
        assert_eq!(response.status, 201);
        assert_eq!(response.header("location"), Some("/whip/r/abc"));
        assert_eq!(response.body, "v=0\r\n");
    }

    #[test]
    fn parses_a_chunked_response() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert!(response_complete(raw));
        assert_eq!(parse_response(raw).expect("parses").body, "abcde");
    }

    #[test]
    fn a_response_cut_inside_the_body_is_not_complete() {
        assert!(!response_complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"
        ));
        assert!(!response_complete(b"HTTP/1.1 200 OK\r\nContent-Len"));
    }

    #[test]
    fn origin_keeps_the_base_path_and_refuses_other_hosts() {
        let origin = Origin::parse("http://127.0.0.1:8088/janus/").expect("parses");
        assert_eq!(origin.base_path, "/janus");
        assert_eq!(origin.address.port(), 8088);
        assert!(Origin::parse("http://192.0.2.1:80").is_err());
        assert!(Origin::parse("https://127.0.0.1").is_err());
    }
}
