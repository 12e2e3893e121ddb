//! A raw HTTP/1.1 client: sends bytes exactly as given, over plain TCP, and reports what the
//! server answered, so tests see what happens to requests no client library would send.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// What the client does after sending its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Shuts its sending side, as a client that sent everything and waits.
    HalfClose,
    /// Keeps the connection open and sends nothing more, as a stalled client.
    KeepOpen,
}

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A response (the first final one; `100 Continue` is skipped).
    Response(Answer),
    /// The server closed the connection without a response.
    Closed,
    /// The connection was reset before a response arrived.
    Reset,
    /// Nothing came within the time limit.
    Hang,
    /// Nobody listens at the address.
    Refused,
}

/// A response as read off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// The header section, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// As much of the body as arrived (all of it, for a `content-length` body).
    pub body: Vec<u8>,
    /// How long the response took to arrive.
    pub took: Duration,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Outcome {
    /// The status, if there was a response.
    pub fn status(&self) -> Option<u16> {
        match self {
            Outcome::Response(a) => Some(a.status),
            _ => None,
        }
    }
}

/// Sends `request` to `addr`, ends as `ending` says, and waits up to `limit` for the response.
pub async fn exchange(
    addr: SocketAddr,
    request: &[u8],
    ending: Ending,
    limit: Duration,
) -> Outcome {
    let started = Instant::now();
    let Ok(stream) = TcpStream::connect(addr).await else {
        return Outcome::Refused;
    };
    let (mut reader, mut writer) = stream.into_split();
    let head_request = request.starts_with(b"HEAD ");
    let request = request.to_vec();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    // The writer runs beside the reader: a server may answer (and stop reading) before the
    // request is all sent, and the answer must still be seen.
    let writing = tokio::spawn(async move {
        let _ = writer.write_all(&request).await;
        match ending {
            Ending::HalfClose => {
                let _ = writer.shutdown().await;
            }
            Ending::KeepOpen => {}
        }
        // Dropping the write half would shut it: keep it until the reader is done.
        let _ = done_rx.await;
        drop(writer);
    });
    let reading = read_response(&mut reader, head_request, started);
    let outcome = tokio::time::timeout(limit, reading)
        .await
        .unwrap_or(Outcome::Hang);
    let _ = done_tx.send(());
    writing.abort();
    outcome
}

async fn read_response(
    reader: &mut tokio::net::tcp::OwnedReadHalf,
    head_request: bool,
    started: Instant,
) -> Outcome {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        // Every complete head at the front of the buffer: skip interim responses.
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let status = parse_status(&head);
            match status {
                Some(s) if (100..200).contains(&s) => {
                    buf.drain(..end + 4);
                    continue;
                }
                Some(status) => {
                    let took = started.elapsed();
                    let headers = parse_headers(&head);
                    let mut body = buf[end + 4..].to_vec();
                    let length = headers
                        .iter()
                        .find(|(n, _)| n == "content-length")
                        .and_then(|(_, v)| v.parse::<usize>().ok());
                    let want = if head_request || status == 204 || status == 304 {
                        0
                    } else {
                        length.unwrap_or(usize::MAX)
                    };
                    while body.len() < want {
                        match reader.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => body.extend_from_slice(&chunk[..n]),
                        }
                    }
                    body.truncate(want.min(body.len()));
                    return Outcome::Response(Answer {
                        status,
                        headers,
                        body,
                        took,
                    });
                }
                None => return Outcome::Closed,
            }
        }
        match reader.read(&mut chunk).await {
            Ok(0) => return Outcome::Closed,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Outcome::Reset,
            Err(_) => return Outcome::Closed,
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_status(head: &str) -> Option<u16> {
    let line = head.lines().next()?;
    let mut parts = line.split(' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.parse().ok()
}

fn parse_headers(head: &str) -> Vec<(String, String)> {
    head.lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect()
}

/// A request with the given method, target, headers and body; `Host` comes first, and
/// `content-length` is added for a non-empty body unless `headers` frame it themselves.
pub fn request(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\nhost: 127.0.0.1\r\n").into_bytes();
    let framed = headers.iter().any(|(n, _)| {
        n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding")
    });
    for (name, value) in headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    if !framed && !body.is_empty() {
        out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}
