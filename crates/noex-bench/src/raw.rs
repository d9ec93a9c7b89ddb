//! The baseline: a minimal raw client written for the benchmark. tokio-tungstenite and
//! serde_json, request ids in a map, nothing else: no reconnects, no timeouts, no typed
//! answers, one task per connection.

use futures::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use hdrhistogram::Histogram;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One raw connection.
pub(crate) struct Raw {
    ws: Ws,
    next_id: u64,
    /// Requests in flight: id → when sent.
    pending: HashMap<u64, Instant>,
}

/// A parsed answer: id and data (or `None` for pushes, pings and the like).
fn parse(text: &str) -> Option<(u64, Value)> {
    let mut frame: Value = serde_json::from_str(text).ok()?;
    match frame.get("type")?.as_str()? {
        "result" => {
            let id = frame.get("id")?.as_u64()?;
            Some((
                id,
                frame
                    .get_mut("data")
                    .map(Value::take)
                    .unwrap_or(Value::Null),
            ))
        }
        "error" => panic!("raw client got an error: {text}"),
        _ => None,
    }
}

/// A `push` frame read straight into the application's type `T`: what the raw client
/// needs of it, and nothing else (its `channel` is skipped).
#[derive(Deserialize)]
struct PushFrame<'a, T> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(rename = "subscriptionId", borrow)]
    subscription_id: Cow<'a, str>,
    data: T,
}

impl Raw {
    /// Connects and waits for `welcome`.
    pub(crate) async fn connect(url: &str) -> Raw {
        Raw::connect_with(url, None).await
    }

    /// Connects reading at most `read_buffer` bytes from the socket at a time (tungstenite
    /// zero-fills that much of its buffer before each read; its default is 128 KiB), and
    /// waits for `welcome`.
    pub(crate) async fn connect_reading(url: &str, read_buffer: usize) -> Raw {
        let config = WebSocketConfig::default().read_buffer_size(read_buffer);
        Raw::connect_with(url, Some(config)).await
    }

    async fn connect_with(url: &str, config: Option<WebSocketConfig>) -> Raw {
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url, config, true)
            .await
            .expect("raw connect");
        if let MaybeTlsStream::Plain(tcp) = ws.get_ref() {
            let _ = tcp.set_nodelay(true);
        }
        let mut raw = Raw {
            ws,
            next_id: 1,
            pending: HashMap::new(),
        };
        loop {
            let text = raw.next_text().await;
            if text.contains("\"welcome\"") {
                break;
            }
        }
        raw
    }

    async fn next_text(&mut self) -> String {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(text))) => return text.as_str().to_owned(),
                Some(Ok(_)) => continue,
                other => panic!("raw connection ended: {other:?}"),
            }
        }
    }

    /// Queues a request frame (sent on the next flush).
    async fn feed(&mut self, mut request: Value) {
        let id = self.next_id;
        self.next_id += 1;
        request["id"] = json!(id);
        self.pending.insert(id, Instant::now());
        self.ws
            .feed(Message::Text(request.to_string().into()))
            .await
            .expect("raw send");
    }

    async fn flush(&mut self) {
        self.ws.flush().await.expect("raw flush");
    }

    /// Handles one frame; returns the answered request's round trip time.
    fn handle(&mut self, text: &str) -> Option<(Duration, Value)> {
        let (id, data) = parse(text)?;
        let sent = self.pending.remove(&id)?;
        Some((sent.elapsed(), data))
    }

    /// Waits for the next answer.
    async fn answer(&mut self) -> (Duration, Value) {
        loop {
            let text = self.next_text().await;
            if let Some(answer) = self.handle(&text) {
                return answer;
            }
        }
    }

    /// `store.get` requests with `depth` in flight until `until`; returns how many ended.
    pub(crate) async fn get_loop(&mut self, bucket: &str, depth: usize, until: Instant) -> u64 {
        let get =
            |i: usize| json!({"type": "store.get", "bucket": bucket, "key": crate::serve::key(i)});
        let mut issued = 0;
        for _ in 0..depth {
            self.feed(get(issued)).await;
            issued += 1;
        }
        self.flush().await;
        let mut done = 0;
        while !self.pending.is_empty() {
            let text = self.next_text().await;
            let mut texts = vec![text];
            // Take what is already there, then send the replacements in one flush.
            while let Some(Some(Ok(Message::Text(more)))) = self.ws.next().now_or_never() {
                texts.push(more.as_str().to_owned());
            }
            let mut refill = 0;
            for text in texts {
                if self.handle(&text).is_some() {
                    done += 1;
                    if Instant::now() < until {
                        refill += 1;
                    }
                }
            }
            for _ in 0..refill {
                self.feed(get(issued)).await;
                issued += 1;
            }
            if refill > 0 {
                self.flush().await;
            }
        }
        done
    }

    /// Sequential `store.get` round trips, their latencies in a histogram
    /// ([`crate::measure::histogram`]).
    pub(crate) async fn latencies(&mut self, bucket: &str, n: usize) -> Histogram<u64> {
        let mut out = crate::measure::histogram();
        for i in 0..n {
            self.feed(json!({"type": "store.get", "bucket": bucket, "key": crate::serve::key(i)}))
                .await;
            self.flush().await;
            crate::measure::record(&mut out, self.answer().await.0);
        }
        out
    }

    /// Sends `n` subscribes in one pipelined burst and waits for every answer; returns the
    /// server's subscription ids with their data.
    pub(crate) async fn subscribe_burst(
        &mut self,
        query: &str,
        params: Option<Value>,
        n: usize,
    ) -> HashMap<String, Value> {
        for _ in 0..n {
            let mut request = json!({"type": "store.subscribe", "query": query});
            if let Some(params) = &params {
                request["params"] = params.clone();
            }
            self.feed(request).await;
        }
        self.flush().await;
        let mut subs = HashMap::with_capacity(n);
        while !self.pending.is_empty() {
            let (_, mut data) = self.answer().await;
            let id = data["subscriptionId"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            subs.insert(
                id,
                data.get_mut("data").map(Value::take).unwrap_or_default(),
            );
        }
        subs
    }

    /// Sends `n` `store.get` requests without waiting for answers (what the socket does
    /// not take within a second stays buffered until [`Raw::drain`]).
    pub(crate) async fn send_gets(&mut self, bucket: &str, n: usize) {
        for i in 0..n {
            self.feed(json!({"type": "store.get", "bucket": bucket, "key": crate::serve::key(i)}))
                .await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), self.flush()).await;
    }

    /// Waits for every request in flight.
    pub(crate) async fn drain(&mut self) {
        self.flush().await;
        while !self.pending.is_empty() {
            self.answer().await;
        }
    }

    /// Issues `n` `store.get` requests at once: with no cap, every one becomes a frame and a
    /// pending entry before any is written. Then writes them while reading answers (the
    /// server's answers must be read for it to go on reading); returns how many answered
    /// with a record.
    pub(crate) async fn burst(&mut self, bucket: &str, n: usize) -> usize {
        let mut frames: VecDeque<Message> = (0..n)
            .map(|i| {
                let id = self.next_id;
                self.next_id += 1;
                self.pending.insert(id, Instant::now());
                let request = json!({"type": "store.get", "bucket": bucket,
                    "key": crate::serve::key(i), "id": id});
                Message::Text(request.to_string().into())
            })
            .collect();
        let mut done = 0;
        poll_fn(|cx| {
            let ws = &mut self.ws;
            while !frames.is_empty() {
                match Pin::new(&mut *ws).poll_ready(cx) {
                    Poll::Ready(Ok(())) => {
                        let frame = frames.pop_front().expect("a frame");
                        Pin::new(&mut *ws).start_send(frame).expect("raw send");
                    }
                    Poll::Ready(Err(e)) => panic!("raw send: {e}"),
                    Poll::Pending => break,
                }
            }
            if let Poll::Ready(Err(e)) = Pin::new(&mut *ws).poll_flush(cx) {
                panic!("raw flush: {e}");
            }
            loop {
                match Pin::new(&mut self.ws).poll_next(cx) {
                    Poll::Ready(Some(Ok(Message::Text(text)))) => {
                        if let Some((_, data)) = self.handle(text.as_str()) {
                            if data.is_object() {
                                done += 1;
                            }
                        }
                    }
                    Poll::Ready(Some(Ok(_))) => {}
                    Poll::Ready(other) => panic!("raw connection ended: {other:?}"),
                    Poll::Pending => break,
                }
            }
            if self.pending.is_empty() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        done
    }

    /// Waits for the next `push` to subscription `id` and reads its data into `T` with
    /// serde_json, straight from the message's text (frames of other kinds are skipped).
    pub(crate) async fn next_push<T: DeserializeOwned>(&mut self, id: &str) -> T {
        loop {
            let text = match self.ws.next().await {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(_)) => continue,
                other => panic!("raw connection ended: {other:?}"),
            };
            match serde_json::from_str::<PushFrame<'_, T>>(text.as_str()) {
                Ok(push) if push.kind == "push" && push.subscription_id == id => return push.data,
                Ok(_) => continue,
                Err(e) if text.as_str().starts_with(r#"{"type":"push""#) => {
                    panic!("raw client cannot read a push: {e}")
                }
                Err(_) => continue,
            }
        }
    }

    /// Requests in flight.
    pub(crate) fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Closes the connection.
    pub(crate) async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}
