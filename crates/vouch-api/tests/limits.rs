//! A node (or anything posing as one) cannot make the client allocate without bound: a response declaring more than
//! `MAX_RESPONSE_BYTES`, or streaming more without declaring it, is refused with a protocol error.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use vouch_api::{Client, ClientError, MAX_RESPONSE_BYTES};

/// Serves one connection: reads the request head, writes `head`, then `body_chunks` chunks of 1 MiB of JSON
/// whitespace (chunked encoding), never finishing the document.
async fn hostile(head: &'static str, body_chunks: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let _ = sock.read(&mut buf).await;
        if sock.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = vec![b' '; 1 << 20];
        for _ in 0..body_chunks {
            let framed = [format!("{:x}\r\n", chunk.len()).into_bytes(), chunk.clone(), b"\r\n".to_vec()].concat();
            if sock.write_all(&framed).await.is_err() {
                return;
            }
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn an_oversized_declared_length_is_refused_before_reading() {
    let url =
        hostile("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 10000000000\r\n\r\n", 0).await;
    match Client::new(&url).get::<serde_json::Value>("/v1/ledger/status").await {
        Err(ClientError::Protocol(m)) => assert!(m.contains("10000000000"), "{m}"),
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[tokio::test]
async fn an_endless_body_is_cut_at_the_limit() {
    let chunks = MAX_RESPONSE_BYTES / (1 << 20) + 8;
    let url =
        hostile("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n", chunks)
            .await;
    match Client::new(&url).get::<serde_json::Value>("/v1/ledger/status").await {
        Err(ClientError::Protocol(m)) => assert!(m.contains(&format!("exceeds {MAX_RESPONSE_BYTES} bytes")), "{m}"),
        other => panic!("expected a protocol error, got {other:?}"),
    }
}
