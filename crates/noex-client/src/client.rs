//! The client handle.

use crate::driver::{Command, Driver, SubItem};
use crate::error::{Error, Result};
use crate::options::ClientOptions;
use crate::reply::{RequestCell, SubscribeCell};
use crate::runtime::Backend;
use crate::shared::{ListenerGuard, Shared, WaitEnd};
use crate::slot::{slot, BufferPolicy, SlotReceiver, Taken};
use async_lock::{Semaphore, SemaphoreGuardArc};
use futures::channel::{mpsc, oneshot};
use futures::future::Either;
use futures::{FutureExt, Stream};
use noex_proto::ops::Operation;
use noex_proto::{
    ConnectionState, Counters, Delivery, LifecycleEvent, Payload, RequestOptions, SubscriptionData,
    SubscriptionId, SubscriptionSpec, WelcomeInfo,
};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

/// A noex-server client. Cheap to clone (`Arc` inside), `Send + Sync`.
///
/// Dropping the last handle closes the connection cleanly. Subscriptions end with the
/// client.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    shared: Arc<Shared>,
    session: Mutex<Option<Session>>,
}

#[derive(Clone)]
pub(crate) struct Session {
    pub(crate) commands: mpsc::UnboundedSender<Command>,
    pub(crate) options: Arc<ClientOptions>,
    /// One permit per request in flight ([`ClientOptions::max_in_flight`]).
    slots: Arc<Semaphore>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(session) = lock(&self.session).take() {
            let _ = session
                .commands
                .unbounded_send(Command::Close { ack: None });
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("state", &self.state())
            .finish()
    }
}

fn closed() -> Error {
    Error::Closed {
        delivery: Delivery::NotSent,
    }
}

/// An answer decoded with `decode`; a mismatch names the answer (bounded, secrets
/// redacted).
fn decoded<R>(payload: &Payload, decode: impl FnOnce(&str) -> serde_json::Result<R>) -> Result<R> {
    decode(payload.json()).map_err(|e| {
        // The answer's `Debug` is bounded and has its secrets redacted.
        let message = format!("the answer does not match the expected type: {payload:?}");
        Error::Serde(crate::error::SerdeError::new(message).with_source(e))
    })
}

/// A request's future, written by hand so that what a caller holds per request in flight
/// is small: the answer's receiver, the ticket to withdraw it, the request slot.
struct RequestFuture<'a> {
    client: &'a Client,
    state: RequestState,
}

/// A request slot and the time left of the deadline.
type Admitted = (SemaphoreGuardArc, Duration);

struct Waiting {
    wait: Pin<Box<dyn Future<Output = Result<Admitted>> + Send>>,
    request: Box<(Operation, RequestOptions)>,
    session: Session,
}

enum RequestState {
    /// Not polled yet. Boxed: an operation is larger than everything that follows.
    Start(Box<(Operation, RequestOptions)>),
    /// Waiting for a request slot (every one in use). Boxed: rare, and larger than the
    /// other states.
    Waiting(Box<Waiting>),
    /// Sent to the driver; dropped before the answer, it withdraws the request.
    InFlight {
        answer: Arc<RequestCell>,
        commands: mpsc::UnboundedSender<Command>,
        _permit: SemaphoreGuardArc,
    },
    Done,
}

impl RequestFuture<'_> {
    /// Hands the request to the driver.
    fn send(
        &mut self,
        session: Session,
        permit: SemaphoreGuardArc,
        op: Operation,
        options: RequestOptions,
    ) -> Result<()> {
        let (answer, reply) = RequestCell::new();
        let command = Command::Request { op, options, reply };
        session
            .commands
            .unbounded_send(command)
            .map_err(|_| closed())?;
        self.state = RequestState::InFlight {
            answer,
            commands: session.commands,
            _permit: permit,
        };
        Ok(())
    }
}

impl Future for RequestFuture<'_> {
    type Output = Result<Payload>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Payload>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                RequestState::Start(_) => {
                    let RequestState::Start(request) =
                        std::mem::replace(&mut this.state, RequestState::Done)
                    else {
                        unreachable!()
                    };
                    // An argument that could not be serialised never becomes a frame.
                    if let Some(problem) = request.0.encode_error() {
                        return Poll::Ready(Err(Error::serde(format!(
                            "cannot serialise the {} request: {problem}",
                            request.0.kind().name()
                        ))));
                    }
                    let Some(session) = this.client.session() else {
                        return Poll::Ready(Err(Error::Disconnected {
                            delivery: Delivery::NotSent,
                        }));
                    };
                    match session.slots.try_acquire_arc() {
                        Some(permit) => {
                            // Out of its box first: the answer's cell, about the same
                            // size, can reuse it.
                            let (op, options) = *request;
                            if let Err(e) = this.send(session, permit, op, options) {
                                return Poll::Ready(Err(e));
                            }
                        }
                        None => {
                            let timeout =
                                request.1.timeout.unwrap_or(session.options.request_timeout);
                            let inner = &this.client.inner;
                            let wait = wait_for_slot(
                                inner.backend.runtime.clone(),
                                inner.shared.clone(),
                                session.slots.clone(),
                                timeout,
                            );
                            this.state = RequestState::Waiting(Box::new(Waiting {
                                wait: Box::pin(wait),
                                request,
                                session,
                            }));
                        }
                    }
                }
                RequestState::Waiting(waiting) => {
                    let (permit, left) = match waiting.wait.as_mut().poll(cx) {
                        Poll::Ready(Ok(admitted)) => admitted,
                        Poll::Ready(Err(e)) => {
                            this.state = RequestState::Done;
                            return Poll::Ready(Err(e));
                        }
                        Poll::Pending => return Poll::Pending,
                    };
                    let RequestState::Waiting(waiting) =
                        std::mem::replace(&mut this.state, RequestState::Done)
                    else {
                        unreachable!()
                    };
                    let Waiting {
                        mut request,
                        session,
                        ..
                    } = *waiting;
                    request.1.timeout = Some(left);
                    let (op, options) = *request;
                    if let Err(e) = this.send(session, permit, op, options) {
                        return Poll::Ready(Err(e));
                    }
                }
                RequestState::InFlight { answer, .. } => {
                    let result = match answer.poll_answer(cx) {
                        Poll::Ready(Some(answer)) => answer.map_err(|e| *e),
                        Poll::Ready(None) => Err(closed()),
                        Poll::Pending => return Poll::Pending,
                    };
                    // Answered: nothing to withdraw; the slot is released.
                    this.state = RequestState::Done;
                    return Poll::Ready(result);
                }
                RequestState::Done => panic!("request future polled after completion"),
            }
        }
    }
}

impl Drop for RequestFuture<'_> {
    fn drop(&mut self) {
        if let RequestState::InFlight {
            commands, answer, ..
        } = &self.state
        {
            let _ = commands.unbounded_send(Command::CancelRequest {
                cell: answer.clone(),
            });
        }
    }
}

/// A subscribe's future, written by hand like [`RequestFuture`].
pub(crate) struct SubscribeFuture<'a> {
    client: &'a Client,
    state: SubscribeState,
}

enum SubscribeState {
    Start(Box<SubscriptionSpec>, BufferPolicy),
    /// Sent to the driver; dropped before the answer, it withdraws the subscribe.
    InFlight {
        answer: Arc<SubscribeCell>,
        rx: SlotReceiver<SubItem>,
        commands: mpsc::UnboundedSender<Command>,
    },
    Done,
}

impl Future for SubscribeFuture<'_> {
    type Output = Result<RawSubscription>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<RawSubscription>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                SubscribeState::Start(..) => {
                    let SubscribeState::Start(spec, policy) =
                        std::mem::replace(&mut this.state, SubscribeState::Done)
                    else {
                        unreachable!()
                    };
                    let (sink, rx) = slot(policy);
                    let (answer, reply) = SubscribeCell::new();
                    let Some(session) = this.client.session() else {
                        return Poll::Ready(Err(closed()));
                    };
                    let command = Command::Subscribe { spec, sink, reply };
                    if session.commands.unbounded_send(command).is_err() {
                        return Poll::Ready(Err(closed()));
                    }
                    this.state = SubscribeState::InFlight {
                        answer,
                        rx,
                        commands: session.commands,
                    };
                }
                SubscribeState::InFlight { answer, .. } => {
                    let result = match answer.poll_answer(cx) {
                        Poll::Ready(Some(answer)) => answer.map_err(|e| *e),
                        Poll::Ready(None) => Err(closed()),
                        Poll::Pending => return Poll::Pending,
                    };
                    // Answered: nothing to withdraw.
                    let SubscribeState::InFlight { rx, commands, .. } =
                        std::mem::replace(&mut this.state, SubscribeState::Done)
                    else {
                        unreachable!()
                    };
                    return Poll::Ready(result.map(|id| RawSubscription {
                        id,
                        rx,
                        commands: Some(commands),
                        ended: false,
                    }));
                }
                SubscribeState::Done => panic!("subscribe future polled after completion"),
            }
        }
    }
}

impl Drop for SubscribeFuture<'_> {
    fn drop(&mut self) {
        if let SubscribeState::InFlight {
            commands, answer, ..
        } = &self.state
        {
            let _ = commands.unbounded_send(Command::CancelSubscribe {
                cell: answer.clone(),
            });
        }
    }
}

/// Waits for a request slot within `timeout`; returns it and the time left.
async fn wait_for_slot(
    runtime: Arc<dyn crate::runtime::Runtime>,
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    timeout: Duration,
) -> Result<(SemaphoreGuardArc, Duration)> {
    let started = runtime.now();
    let wait = shared.wait_for_slot();
    let acquire = slots.acquire_arc();
    match futures::future::select(std::pin::pin!(acquire), runtime.sleep(timeout)).await {
        Either::Left((permit, _)) => {
            wait.end(WaitEnd::Admitted);
            let waited = runtime.now().saturating_duration_since(started);
            Ok((permit, timeout.saturating_sub(waited)))
        }
        Either::Right(_) => {
            wait.end(WaitEnd::TimedOut);
            Err(Error::Timeout {
                delivery: Delivery::NotSent,
            })
        }
    }
}

impl Client {
    /// A client that is not connected yet; see [`Client::connect`].
    pub fn new(backend: impl Into<Backend>) -> Client {
        Client {
            inner: Arc::new(Inner {
                backend: backend.into(),
                shared: Shared::new(),
                session: Mutex::new(None),
            }),
        }
    }

    /// Connects (and logs in, when the options say so). Resolves with the server's
    /// `welcome` once connected; fails when the first connection cannot be made (unless
    /// [`ClientOptions::retry_initial_connect`]). A previous connection of this client is
    /// closed first.
    pub async fn connect(&self, url: &str, options: ClientOptions) -> Result<WelcomeInfo> {
        self.disconnect().await;
        let seed = options.seed.unwrap_or_else(seed_from_address);
        let core = noex_proto::ClientCore::new(options.core_config(url), seed);
        let (commands_tx, commands_rx) = mpsc::unbounded();
        let (welcome_tx, welcome_rx) = oneshot::channel();
        let driver = Driver::new(
            core,
            self.inner.backend.clone(),
            options.tls.clone(),
            options.token_provider.clone(),
            self.inner.shared.clone(),
            commands_rx,
            welcome_tx,
        );
        *lock(&self.inner.session) = Some(Session {
            commands: commands_tx,
            slots: Arc::new(Semaphore::new(options.max_in_flight)),
            options: Arc::new(options),
        });
        self.inner.backend.runtime.spawn(driver.run().boxed());
        welcome_rx.await.unwrap_or_else(|_| Err(closed()))
    }

    /// The one-call form: a new client on `backend`, connected to `url`.
    pub async fn connect_with(
        backend: impl Into<Backend>,
        url: &str,
        options: ClientOptions,
    ) -> Result<Client> {
        let client = Client::new(backend);
        client.connect(url, options).await?;
        Ok(client)
    }

    /// Closes the connection on purpose: pending requests fail with [`Error::Closed`],
    /// subscriptions end quietly (their streams yield `None`), no reconnect. Completes
    /// when the driver has stopped: the client then holds no socket and no task.
    pub async fn disconnect(&self) {
        let session = lock(&self.inner.session).take();
        if let Some(session) = session {
            let (ack, done) = oneshot::channel();
            if session
                .commands
                .unbounded_send(Command::Close { ack: Some(ack) })
                .is_ok()
            {
                let _ = done.await;
            }
        }
    }

    /// The connection state.
    pub fn state(&self) -> ConnectionState {
        self.inner.shared.state()
    }

    /// Whether connected (logged in, subscriptions in place).
    pub fn is_connected(&self) -> bool {
        self.state() == ConnectionState::Connected
    }

    /// Calls `callback` for every lifecycle event until the guard is dropped. The callback
    /// runs on the driver task: keep it short and never block in it. When it runs, the
    /// [`Client::state`] the event announces is already in place. A callback that panics
    /// is reported (a `tracing` error and a [`LifecycleEvent::Error`] with
    /// [`noex_proto::CoreError::CallbackPanicked`]) and stays registered; the client and
    /// the other callbacks carry on.
    pub fn on(&self, callback: impl Fn(&LifecycleEvent) + Send + Sync + 'static) -> ListenerGuard {
        self.inner.shared.add_callback(Arc::new(callback))
    }

    /// Lifecycle events as a stream. An unread stream keeps at most
    /// [`ClientOptions::event_buffer`] events (the oldest are dropped beyond that).
    pub fn events(&self) -> EventStream {
        let capacity = self
            .session()
            .map(|s| s.options.event_buffer)
            .unwrap_or(1024);
        EventStream {
            rx: self.inner.shared.add_stream(capacity),
        }
    }

    /// Running totals (frames, requests by outcome, pushes, reconnects) and gauges
    /// (requests pending, subscriptions live). Every request issued ends exactly once, so
    /// `requests_issued == requests_ended() + requests_pending`; requests waiting for a
    /// slot ([`ClientOptions::max_in_flight`]) count as pending.
    pub async fn counters(&self) -> Result<Counters> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Counters { reply })?;
        let counters = answer.await.map_err(|_| closed())?;
        Ok(self.inner.shared.with_slot_waits(counters))
    }

    /// Sends any operation of the catalogue and returns the raw answer. The typed handles
    /// ([`Client::store`], …) are built on this.
    pub fn request(&self, op: Operation) -> impl Future<Output = Result<Payload>> + Send + '_ {
        self.request_with(op, RequestOptions::default())
    }

    /// [`Client::request`] with per-request options (deadline, retry-safe).
    ///
    /// With [`ClientOptions::max_in_flight`] requests already in flight, the call waits for
    /// one to end (its deadline runs meanwhile; past it the call fails with
    /// [`Error::Timeout`], not sent). Dropping the future withdraws the request: a frame
    /// not yet written is never written, and a late answer is ignored. Nothing happens
    /// until the future is first polled.
    pub fn request_with(
        &self,
        op: Operation,
        options: RequestOptions,
    ) -> impl Future<Output = Result<Payload>> + Send + '_ {
        RequestFuture {
            client: self,
            state: RequestState::Start(Box::new((op, options))),
        }
    }

    /// Sends a request and decodes its answer with `decode` (straight from the answer's
    /// text).
    pub(crate) fn call_with<'a, R>(
        &'a self,
        op: Operation,
        options: RequestOptions,
        decode: impl FnOnce(&str) -> serde_json::Result<R> + Send + 'a,
    ) -> impl Future<Output = Result<R>> + Send + 'a {
        self.request_with(op, options)
            .map(move |answer| answer.and_then(|payload| decoded(&payload, decode)))
    }

    /// Sends a request and deserializes its answer.
    pub(crate) fn call<T: serde::de::DeserializeOwned>(
        &self,
        op: Operation,
        options: RequestOptions,
    ) -> impl Future<Output = Result<T>> + Send + '_ {
        self.call_with(op, options, |text| serde_json::from_str(text))
    }

    /// Makes a subscription. Dropped before its answer, the future withdraws the
    /// subscribe (never sent, or undone on the server when its answer comes) and it is
    /// never restored.
    /// Subscribes to a store query with the parameters a builder was given (an argument
    /// that could not be serialised fails here, unsent), keeping only the latest unread
    /// result.
    pub(crate) async fn subscribe_query(
        &self,
        query: &str,
        params: Option<Result<serde_json::Value>>,
    ) -> Result<RawSubscription> {
        let params = params.transpose()?;
        let spec = SubscriptionSpec::query(query, params);
        self.subscribe_raw(spec, BufferPolicy::Latest).await
    }

    pub(crate) fn subscribe_raw(
        &self,
        spec: SubscriptionSpec,
        policy: BufferPolicy,
    ) -> SubscribeFuture<'_> {
        SubscribeFuture {
            client: self,
            state: SubscribeState::Start(Box::new(spec), policy),
        }
    }

    pub(crate) async fn unsubscribe_id(&self, id: SubscriptionId) -> Result<()> {
        let (ack, done) = oneshot::channel();
        self.send(Command::Unsubscribe { id, ack: Some(ack) })?;
        done.await.map_err(|_| closed())
    }

    pub(crate) fn options(&self) -> Option<Arc<ClientOptions>> {
        self.session().map(|s| s.options)
    }

    pub(crate) fn runtime(&self) -> Arc<dyn crate::runtime::Runtime> {
        self.inner.backend.runtime.clone()
    }

    fn session(&self) -> Option<Session> {
        lock(&self.inner.session).clone()
    }

    fn send(&self, command: Command) -> Result<()> {
        let session = self.session().ok_or(Error::Disconnected {
            delivery: Delivery::NotSent,
        })?;
        session
            .commands
            .unbounded_send(command)
            .map_err(|_| closed())
    }
}

/// A per-client seed for the reconnect jitter, so that many clients restarted together do
/// not reconnect in lockstep. Derived from a fresh allocation's address and the clock; it
/// needs to differ between clients, not to be unpredictable.
fn seed_from_address() -> u64 {
    let marker = Box::new(0u8);
    let address = &*marker as *const u8 as usize as u64;
    let nanos = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    address.rotate_left(17) ^ nanos
}

/// Lifecycle events as a stream; see [`Client::events`].
pub struct EventStream {
    rx: SlotReceiver<LifecycleEvent>,
}

impl Stream for EventStream {
    type Item = LifecycleEvent;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            return match self.rx.poll_take(cx) {
                Poll::Ready(Taken::Item(event)) => Poll::Ready(Some(event)),
                Poll::Ready(Taken::Lagged(_)) => continue,
                Poll::Ready(Taken::Ended) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            };
        }
    }
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventStream")
    }
}

/// A subscription's untyped core: its handle, its buffer, and the way to end it.
pub(crate) struct RawSubscription {
    pub(crate) id: SubscriptionId,
    pub(crate) rx: SlotReceiver<SubItem>,
    commands: Option<mpsc::UnboundedSender<Command>>,
    /// The stream ended (its failure or its end was yielded): every later poll is `None`.
    ended: bool,
}

/// What a subscription's stream takes next, before the typed layer reads it.
pub(crate) enum Next {
    /// The data it was made with, or a push.
    Data(SubscriptionData),
    /// Events may have been missed between these times (rules subscriptions only).
    Gap { from: SystemTime, to: SystemTime },
    /// This many items were dropped because the reader was too slow (rules only).
    Lagged(u64),
}

impl RawSubscription {
    /// The next item of every subscription stream, by one rule: a failure is yielded once
    /// and ends the stream, as its end does; after either, `None` for good.
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Next>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.rx.poll_take(cx) {
            Poll::Ready(Taken::Item(SubItem::Data(data))) => {
                Poll::Ready(Some(Ok(Next::Data(data))))
            }
            Poll::Ready(Taken::Item(SubItem::Gap { from, to })) => {
                Poll::Ready(Some(Ok(Next::Gap { from, to })))
            }
            Poll::Ready(Taken::Lagged(missed)) => Poll::Ready(Some(Ok(Next::Lagged(missed)))),
            Poll::Ready(Taken::Item(SubItem::Failed(error))) => {
                self.ended = true;
                Poll::Ready(Some(Err(*error)))
            }
            Poll::Ready(Taken::Ended) => {
                self.ended = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// Ends the stream from the typed layer's side (it yielded its last item), and
    /// unsubscribes now.
    pub(crate) fn finish(&mut self) {
        self.ended = true;
        self.end();
    }

    pub(crate) async fn unsubscribe(mut self) {
        if let Some(commands) = self.commands.take() {
            let (ack, done) = oneshot::channel();
            if commands
                .unbounded_send(Command::Unsubscribe {
                    id: self.id,
                    ack: Some(ack),
                })
                .is_ok()
            {
                let _ = done.await;
            }
        }
    }

    pub(crate) fn buffered(&self) -> usize {
        self.rx.buffered()
    }

    /// Unsubscribes now, without waiting (what dropping it does).
    pub(crate) fn end(&mut self) {
        if let Some(commands) = self.commands.take() {
            let _ = commands.unbounded_send(Command::Unsubscribe {
                id: self.id,
                ack: None,
            });
        }
    }

    /// Reports a lifecycle event through the driver (to every listener, in order).
    pub(crate) fn report(&self, event: LifecycleEvent) {
        if let Some(commands) = &self.commands {
            let _ = commands.unbounded_send(Command::Report(Box::new(event)));
        }
    }
}

impl Drop for RawSubscription {
    fn drop(&mut self) {
        self.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone)]
    struct Nothing;

    impl crate::runtime::Runtime for Nothing {
        fn spawn(&self, _: futures::future::BoxFuture<'static, ()>) {}
        fn sleep(&self, _: Duration) -> futures::future::BoxFuture<'static, ()> {
            Box::pin(futures::future::pending())
        }
    }

    impl crate::runtime::Connector for Nothing {
        fn connect(
            &self,
            _: &str,
            _: &crate::options::TlsOptions,
        ) -> futures::future::BoxFuture<
            'static,
            std::result::Result<
                (crate::runtime::FrameSink, crate::runtime::FrameStream),
                crate::transport_error::TransportError,
            >,
        > {
            Box::pin(futures::future::pending())
        }
    }

    /// What a caller holds per request or subscribe in flight stays small: no nested
    /// async state machines, no operation kept inline.
    #[test]
    fn request_and_subscribe_futures_are_small() {
        let client = Client::new(Backend::new(Nothing));
        let request = client.request(noex_proto::ops::store::get("b", "k"));
        assert!(size_of_val(&request) <= 64);
        let bucket = client.store().bucket("b");
        let get = bucket.get("k1".to_string());
        assert!(size_of_val(&get) <= 80);
        let subscribe =
            client.subscribe_raw(SubscriptionSpec::query("q", None), BufferPolicy::Latest);
        assert!(size_of_val(&subscribe) <= 64);
    }

    #[test]
    fn a_request_before_connect_fails_not_sent() {
        let client = Client::new(Backend::new(Nothing));
        let answer = futures::executor::block_on(client.request(noex_proto::ops::store::all("b")));
        assert!(matches!(
            answer,
            Err(Error::Disconnected {
                delivery: Delivery::NotSent
            })
        ));
    }
}
