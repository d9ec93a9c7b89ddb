//! The client handle.

use crate::driver::{Command, Driver, SubItem, Ticket};
use crate::error::{Error, Result};
use crate::options::ClientOptions;
use crate::runtime::Backend;
use crate::shared::{ListenerGuard, Shared, WaitEnd};
use crate::slot::{slot, BufferPolicy, SlotReceiver, Taken};
use async_lock::{Semaphore, SemaphoreGuardArc};
use futures::channel::{mpsc, oneshot};
use futures::future::Either;
use futures::{FutureExt, Stream};
use noex_proto::{
    ConnectionState, Counters, Delivery, LifecycleEvent, Operation, Payload, RequestOptions,
    SubscriptionId, SubscriptionSpec, WelcomeInfo,
};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

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

/// Withdraws a request or subscribe when its future is dropped before the answer.
struct Withdraw<'a> {
    commands: &'a mpsc::UnboundedSender<Command>,
    ticket: Option<Ticket>,
}

impl<'a> Withdraw<'a> {
    fn new(commands: &'a mpsc::UnboundedSender<Command>, ticket: Ticket) -> Withdraw<'a> {
        Withdraw {
            commands,
            ticket: Some(ticket),
        }
    }

    /// The answer arrived: nothing to withdraw.
    fn disarm(mut self) {
        self.ticket = None;
    }
}

/// Sends a ticketed command and waits for its answer; dropped before the answer, it
/// withdraws what the command asked for.
async fn ask<T>(
    commands: &mpsc::UnboundedSender<Command>,
    ticket: Ticket,
    command: Command,
    answer: oneshot::Receiver<Result<T>>,
) -> Result<T> {
    commands.unbounded_send(command).map_err(|_| closed())?;
    let withdraw = Withdraw::new(commands, ticket);
    let result = answer.await.unwrap_or_else(|_| Err(closed()));
    withdraw.disarm();
    result
}

impl Drop for Withdraw<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            let _ = self.commands.unbounded_send(Command::Cancel { ticket });
        }
    }
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
    pub async fn request(&self, op: Operation) -> Result<Payload> {
        self.request_with(op, RequestOptions::default()).await
    }

    /// [`Client::request`] with per-request options (deadline, retry-safe).
    ///
    /// With [`ClientOptions::max_in_flight`] requests already in flight, the call waits for
    /// one to end (its deadline runs meanwhile; past it the call fails with
    /// [`Error::Timeout`], not sent). Dropping the future withdraws the request: a frame
    /// not yet written is never written, and a late answer is ignored.
    pub async fn request_with(
        &self,
        op: Operation,
        mut options: RequestOptions,
    ) -> Result<Payload> {
        // An argument that could not be serialised never becomes a frame.
        if let Some(problem) = op.encode_error() {
            return Err(Error::serde(problem));
        }
        let session = self.session().ok_or(Error::Disconnected {
            delivery: Delivery::NotSent,
        })?;
        let permit = match session.slots.try_acquire_arc() {
            Some(permit) => permit,
            None => {
                let timeout = options.timeout.unwrap_or(session.options.request_timeout);
                let (permit, left) = self.wait_for_slot(&session, timeout).await?;
                options.timeout = Some(left);
                permit
            }
        };
        let ticket = self.inner.shared.ticket();
        let (reply, answer) = oneshot::channel();
        let command = Command::Request {
            ticket,
            op,
            options,
            reply,
        };
        let result = ask(&session.commands, ticket, command, answer).await;
        drop(permit);
        result
    }

    /// Waits for a request slot within `timeout`; returns it and the time left.
    async fn wait_for_slot(
        &self,
        session: &Session,
        timeout: std::time::Duration,
    ) -> Result<(SemaphoreGuardArc, std::time::Duration)> {
        let runtime = &self.inner.backend.runtime;
        let started = runtime.now();
        let wait = self.inner.shared.wait_for_slot();
        let acquire = session.slots.acquire_arc();
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

    /// Sends a request and deserializes its answer.
    pub(crate) async fn call<T: serde::de::DeserializeOwned>(
        &self,
        op: Operation,
        options: RequestOptions,
    ) -> Result<T> {
        let payload = self.request_with(op, options).await?;
        payload.deserialize().map_err(|e| {
            // The answer's `Debug` is bounded and has its secrets redacted.
            let message = format!("the answer does not match the expected type: {payload:?}");
            Error::Serde(crate::SerdeError::new(message).with_source(e))
        })
    }

    pub(crate) async fn subscribe_raw(
        &self,
        spec: SubscriptionSpec,
        policy: BufferPolicy,
    ) -> Result<RawSubscription> {
        let (sink, rx) = slot(policy);
        let (reply, answer) = oneshot::channel();
        let session = self.session().ok_or_else(closed)?;
        let ticket = self.inner.shared.ticket();
        let command = Command::Subscribe {
            ticket,
            spec,
            sink,
            reply,
        };
        // Dropped before the answer: the subscribe is withdrawn (never sent, or undone on
        // the server when its answer comes) and never restored.
        let id = ask(&session.commands, ticket, command, answer).await?;
        Ok(RawSubscription {
            id,
            rx,
            commands: Some(session.commands),
        })
    }

    pub(crate) async fn unsubscribe_id(&self, id: SubscriptionId) -> Result<()> {
        let (ack, done) = oneshot::channel();
        self.send(Command::Unsubscribe { id, ack: Some(ack) })?;
        done.await.map_err(|_| closed())
    }

    /// The store: buckets, queries, subscriptions, transactions, schema.
    pub fn store(&self) -> crate::api::store::Store {
        crate::api::store::Store::new(self.clone())
    }
    /// The rules engine: events, facts, rule subscriptions, rule administration.
    pub fn rules(&self) -> crate::api::rules::Rules {
        crate::api::rules::Rules::new(self.clone())
    }
    /// Token authentication.
    pub fn auth(&self) -> crate::api::auth::AuthApi {
        crate::api::auth::AuthApi::new(self.clone())
    }
    /// Built-in identity: sessions, users, roles, ACL, ownership.
    pub fn identity(&self) -> crate::api::identity::Identity {
        crate::api::identity::Identity::new(self.clone())
    }
    /// The audit log.
    pub fn audit(&self) -> crate::api::audit::Audit {
        crate::api::audit::Audit::new(self.clone())
    }
    /// Server-side procedures.
    pub fn procedures(&self) -> crate::api::procedures::Procedures {
        crate::api::procedures::Procedures::new(self.clone())
    }
    /// Server introspection.
    pub fn server(&self) -> crate::api::server::ServerApi {
        crate::api::server::ServerApi::new(self.clone())
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
    let nanos = std::time::SystemTime::now()
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
}

impl RawSubscription {
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

    /// Reports a lifecycle event through the driver (to every listener, in order).
    pub(crate) fn report(&self, event: noex_proto::LifecycleEvent) {
        if let Some(commands) = &self.commands {
            let _ = commands.unbounded_send(Command::Report(event));
        }
    }
}

impl Drop for RawSubscription {
    fn drop(&mut self) {
        if let Some(commands) = self.commands.take() {
            let _ = commands.unbounded_send(Command::Unsubscribe {
                id: self.id,
                ack: None,
            });
        }
    }
}
