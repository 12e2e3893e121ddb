//! Graceful shutdown over real sockets: the listener closes, and a request in flight still
//! gets its answer.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{TOKEN, TestServer};

#[tokio::test]
async fn shutdown_lets_requests_in_flight_finish() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpStream;

    /// Reads one response head (up to the blank line) within a time limit.
    async fn read_head(tcp: &mut TcpStream) -> String {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        tokio::time::timeout(Duration::from_secs(10), async {
            while !head.ends_with(b"\r\n\r\n") {
                assert_eq!(tcp.read(&mut byte).await.unwrap(), 1, "connection closed");
                head.push(byte[0]);
            }
        })
        .await
        .expect("a response head in time");
        String::from_utf8(head).unwrap()
    }

    let server = TestServer::memory().await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let body = "first second";
    let request = format!(
        "PUT /s/site:x/slow HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {TOKEN}\r\n\
         content-length: {}\r\nexpect: 100-continue\r\n\r\n",
        server.addr,
        body.len()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    // The server answers `100 Continue` once the handler reads the body: from then on the
    // request is in flight, and stopping the server must not cut it off.
    let interim = read_head(&mut tcp).await;
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    server.begin_shutdown();
    // The listener closes (polled: the server task closes it in its own time).
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(server.addr).await.is_ok() {
        assert!(Instant::now() < deadline, "the listener stayed open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tcp.write_all(body.as_bytes()).await.unwrap();
    let reply = read_head(&mut tcp).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    server.stop().await.unwrap();
}
