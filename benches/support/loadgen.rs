//! The load generator's client: one keep-alive HTTP/1.1 connection per worker, hyper's
//! bare client connection (no pool, no redirects, no URL parsing per request), with
//! the request parts prepared before the clock starts — the way wrk loads a server.
//! The load generator shares the 2 cores with the server under test, so every
//! microsecond it spends per request is taken from the server; reqwest spent about
//! 35 us of CPU per create.
#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;

pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: HeaderValue,
    auth: HeaderValue,
}

impl Conn {
    /// Connect to `base` (`http://host:port`), sending `Authorization: Bearer token`.
    pub async fn open(base: &str, token: &str) -> Conn {
        let host = base.strip_prefix("http://").expect("an http:// base URL");
        let stream = tokio::net::TcpStream::connect(host)
            .await
            .unwrap_or_else(|e| panic!("connect {host}: {e}"));
        stream.set_nodelay(true).expect("nodelay");
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Conn {
            sender,
            host: HeaderValue::from_str(host).expect("host"),
            auth: HeaderValue::from_str(&format!("Bearer {token}")).expect("token"),
        }
    }

    /// POST a JSON body to `path`; the status (the answer is read to its end).
    pub async fn post_json(&mut self, path: &str, body: Bytes) -> StatusCode {
        let req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(HOST, self.host.clone())
            .header(AUTHORIZATION, self.auth.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(Full::new(body))
            .expect("request");
        self.send(req).await
    }

    /// GET `path_and_query`; the status (the answer is read to its end).
    pub async fn get(&mut self, path_and_query: &str) -> StatusCode {
        let req = Request::builder()
            .uri(path_and_query)
            .header(HOST, self.host.clone())
            .header(AUTHORIZATION, self.auth.clone())
            .body(Full::new(Bytes::new()))
            .expect("request");
        self.send(req).await
    }

    async fn send(&mut self, req: Request<Full<Bytes>>) -> StatusCode {
        self.sender.ready().await.expect("connection ready");
        let res = self.sender.send_request(req).await.expect("request");
        let status = res.status();
        res.into_body().collect().await.expect("body");
        status
    }
}

/// `path?` followed by `params` URL-encoded.
pub fn path_with_query(path: &str, params: &[(String, String)]) -> String {
    let mut q = form_urlencoded::Serializer::new(format!("{path}?"));
    for (k, v) in params {
        q.append_pair(k, v);
    }
    q.finish()
}
