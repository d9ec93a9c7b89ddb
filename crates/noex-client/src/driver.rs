//! The driver: one task per connected client that owns the protocol core, the connection
//! (and every attempt at one), and moves frames between the core, the transport and the
//! API handles. Written once, against `futures`. It spawns nothing: when it ends, every
//! socket it held is closed.

use crate::error::{Error, Result};
use crate::options::{TokenProvider, TokenRequest};
use crate::reply::{Replier, Replies, RequestCell, SubscribeCell};
use crate::runtime::{Backend, FrameSink, FrameStream, Incoming, Outgoing};
use crate::shared::Shared;
use crate::slot::{Notices, SlotSender};
use crate::transport_error::{TransportError, TransportErrorKind};
use futures::channel::{mpsc, oneshot};
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, SinkExt, StreamExt};
use noex_proto::ops::Operation;
use noex_proto::{
    ClientCore, ConnectionId, ConnectionState, Counters, Delivery, DisconnectReason, Event, Gap,
    Input, LifecycleEvent, Output, Payload, RequestId, RequestOptions, Secret, SubscriptionData,
    SubscriptionEvent, SubscriptionId, SubscriptionSpec, TokenFetchId, WelcomeInfo,
};
use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};
use tracing::{debug, trace};

/// What a subscription's stream receives.
#[derive(Debug)]
pub(crate) enum SubItem {
    /// A value: the data a subscription was made with (checked when read) or a push.
    Data(SubscriptionData),
    /// Events may have been missed between these times (rules subscriptions): a notice,
    /// which a full queue never drops (see [`GAPS`]).
    Gap { from: SystemTime, to: SystemTime },
    /// Boxed: every live subscription keeps room for one item.
    Failed(Box<Error>),
}

/// A rules subscription's queue keeps its gaps: a slow reader loses events (counted), never
/// the notice that events were missed; gaps that meet become one, from the earliest start
/// to the latest end (every event not delivered still lies inside it).
const GAPS: Notices<SubItem> = Notices {
    is_notice: |item| matches!(item, SubItem::Gap { .. }),
    merge: |earlier, later| {
        if let (
            SubItem::Gap { from, to },
            SubItem::Gap {
                from: later_from,
                to: later_to,
            },
        ) = (earlier, later)
        {
            *from = (*from).min(later_from);
            *to = (*to).max(later_to);
        }
    },
};

impl SubEntry {
    /// Hands an item to the subscription's stream.
    fn push(&self, item: SubItem) {
        self.sink.push_with(item, Some(&GAPS));
    }
}

/// Requests from the API handles to the driver.
pub(crate) enum Command {
    Request {
        op: Operation,
        options: RequestOptions,
        reply: Replier<Payload>,
    },
    /// The future of a request was dropped before its answer: its cell carries the
    /// request's id.
    CancelRequest {
        cell: Arc<RequestCell>,
    },
    /// The spec boxed: the subscribe future keeps it boxed until it is sent.
    Subscribe {
        spec: Box<SubscriptionSpec>,
        sink: SlotSender<SubItem>,
        reply: Replier<SubscriptionId>,
    },
    /// The future of a subscribe was dropped before its answer was read: its cell
    /// carries the subscription's id.
    CancelSubscribe {
        cell: Arc<SubscribeCell>,
    },
    Unsubscribe {
        id: SubscriptionId,
        ack: Option<oneshot::Sender<()>>,
    },
    Counters {
        reply: oneshot::Sender<Counters>,
    },
    /// A lifecycle event raised outside the driver (a panicking `on_update` callback).
    Report(Box<LifecycleEvent>),
    Close {
        ack: Option<oneshot::Sender<()>>,
    },
}

type Connecting = BoxFuture<'static, std::result::Result<(FrameSink, FrameStream), TransportError>>;

/// The token provider's answer, or its panic.
type Fetched = std::result::Result<std::result::Result<Secret, String>, Box<dyn Any + Send>>;

/// One open (or opening) transport connection. The driver connects, reads and writes it
/// itself: no task per attempt, no reader or writer task, no channel hop per frame.
struct Link {
    id: ConnectionId,
    /// The attempt, until it completes. Dropping it (superseded, timed out, closed)
    /// closes the socket at once.
    connecting: Option<Connecting>,
    /// The sending half, once open.
    sink: Option<FrameSink>,
    /// The receiving half, once open.
    stream: Option<FrameStream>,
    /// Frames handed out by the core and not yet handed to the socket.
    queue: VecDeque<Frame>,
    /// Whether frames were handed to the socket since its last flush.
    unflushed: bool,
    /// The highest sequence number handed to the socket (it may have left).
    written: u64,
    reported_written: u64,
}

struct Frame {
    seq: u64,
    request: Option<RequestId>,
    text: String,
}

struct SubEntry {
    sink: SlotSender<SubItem>,
    /// The subscribe future's answer, until it is answered. The entry outlives it: a
    /// future dropped after its answer was sent and before it was read still withdraws
    /// the subscription (`Command::CancelSubscribe`).
    ready: Option<Replier<SubscriptionId>>,
}

/// Frames queued for the socket that are written even while other work is ready.
const WRITE_BATCH: usize = 64;
/// How long a closing connection may take to flush its close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

pub(crate) struct Driver {
    core: ClientCore,
    backend: Backend,
    tls: crate::options::TlsOptions,
    /// Asked for a token when the core says so ([`Output::FetchToken`]).
    token_provider: Option<TokenProvider>,
    /// The token asked for and not yet given.
    token_fetch: Option<(TokenFetchId, BoxFuture<'static, Fetched>)>,
    shared: Arc<Shared>,
    commands: mpsc::UnboundedReceiver<Command>,
    link: Option<Link>,
    /// Connections being closed: their close frame is flushed (at most [`CLOSE_GRACE`]).
    closing: FuturesUnordered<BoxFuture<'static, ()>>,
    /// What each request in flight is owed, by the core's request id.
    replies: Replies,
    subs: HashMap<SubscriptionId, SubEntry>,
    connect_waiter: Option<oneshot::Sender<Result<WelcomeInfo>>>,
    welcome: Option<WelcomeInfo>,
    last_disconnect: Option<DisconnectReason>,
    /// The last failed connection attempt's error, kept with its kind and source for the
    /// answer of [`crate::Client::connect`] (the core only hears its text).
    last_transport_error: Option<TransportError>,
    close_acks: Vec<oneshot::Sender<()>>,
}

enum Wake {
    Command(Option<Command>),
    Opened(
        ConnectionId,
        std::result::Result<(FrameSink, FrameStream), TransportError>,
    ),
    Frame(ConnectionId, Option<Incoming>),
    WriteFailed(ConnectionId, TransportError),
    Token(TokenFetchId, Fetched),
    Timer,
}

impl Driver {
    pub(crate) fn new(
        core: ClientCore,
        backend: Backend,
        tls: crate::options::TlsOptions,
        token_provider: Option<TokenProvider>,
        shared: Arc<Shared>,
        commands: mpsc::UnboundedReceiver<Command>,
        connect_waiter: oneshot::Sender<Result<WelcomeInfo>>,
    ) -> Driver {
        Driver {
            core,
            backend,
            tls,
            token_provider,
            token_fetch: None,
            shared,
            commands,
            link: None,
            closing: FuturesUnordered::new(),
            replies: Replies::default(),
            subs: HashMap::new(),
            connect_waiter: Some(connect_waiter),
            welcome: None,
            last_disconnect: None,
            last_transport_error: None,
            close_acks: Vec::new(),
        }
    }

    fn now(&self) -> Instant {
        self.backend.runtime.now()
    }

    /// Runs until the client is closed (explicitly or by dropping every handle).
    pub(crate) async fn run(mut self) {
        let now = self.now();
        self.core.connect(now);
        self.process_outputs();
        let mut timer: Option<(Instant, BoxFuture<'static, ()>)> = None;
        let mut commands_first = true;
        while !self.core.is_closed() {
            // Re-arm only for an earlier deadline: a timer that fires early costs one empty
            // `handle_timeout`, while re-arming on every request would cost a timer
            // registration each time.
            if let Some(next) = self.core.poll_timeout() {
                if timer.as_ref().is_none_or(|(at, _)| next < *at) {
                    let wait = next.saturating_duration_since(self.now());
                    timer = Some((next, self.backend.runtime.sleep(wait)));
                }
            }
            commands_first = !commands_first;
            let wake = poll_fn(|cx| self.poll_wake(cx, &mut timer, commands_first)).await;
            self.report_written();
            let now = self.now();
            match wake {
                Wake::Command(Some(command)) => self.handle_command(now, command),
                Wake::Command(None) => self.core.close(now),
                Wake::Opened(connection, result) => self.opened(now, connection, result),
                Wake::Frame(connection, frame) => self.handle_frame(now, connection, frame),
                Wake::WriteFailed(connection, error) => {
                    let reason = error.chain_text();
                    let input = Input::Closed {
                        code: None,
                        reason: &reason,
                    };
                    self.core.handle_input(now, connection, input);
                    self.drop_link(connection);
                }
                Wake::Token(id, fetched) => self.token_fetched(now, id, fetched),
                Wake::Timer => {
                    timer = None;
                    self.core.handle_timeout(now);
                }
            }
            self.process_outputs();
        }
        self.process_outputs();
        // Let the close frames reach the server before saying the client is closed; each
        // is bounded by its grace period. Nothing outlives the driver.
        while self.closing.next().await.is_some() {}
        for ack in self.close_acks.drain(..) {
            let _ = ack.send(());
        }
        debug!("driver stopped");
    }

    /// Waits for the next thing to do; writes queued frames on the way.
    fn poll_wake(
        &mut self,
        cx: &mut Context<'_>,
        timer: &mut Option<(Instant, BoxFuture<'static, ()>)>,
        commands_first: bool,
    ) -> Poll<Wake> {
        // Closing connections make progress on their own.
        while let Poll::Ready(Some(())) = self.closing.poll_next_unpin(cx) {}
        // Writes go out when nothing else is ready (so one flush carries everything
        // queued), or once a batch has piled up.
        if let Some(link) = self.link.as_mut() {
            if link.queue.len() >= WRITE_BATCH {
                if let Err(e) = drive_writes(link, &self.core, cx) {
                    return Poll::Ready(Wake::WriteFailed(link.id, e));
                }
            }
        }
        if commands_first {
            if let Poll::Ready(c) = self.commands.poll_next_unpin(cx) {
                return Poll::Ready(Wake::Command(c));
            }
        }
        if let Some(link) = self.link.as_mut() {
            if let Some(connecting) = link.connecting.as_mut() {
                if let Poll::Ready(result) = connecting.poll_unpin(cx) {
                    link.connecting = None;
                    return Poll::Ready(Wake::Opened(link.id, result));
                }
            }
            if let Some(stream) = link.stream.as_mut() {
                if let Poll::Ready(frame) = stream.poll_next_unpin(cx) {
                    return Poll::Ready(Wake::Frame(link.id, frame));
                }
            }
        }
        if !commands_first {
            if let Poll::Ready(c) = self.commands.poll_next_unpin(cx) {
                return Poll::Ready(Wake::Command(c));
            }
        }
        if let Some((id, fetch)) = self.token_fetch.as_mut() {
            if let Poll::Ready(fetched) = fetch.poll_unpin(cx) {
                let id = *id;
                self.token_fetch = None;
                return Poll::Ready(Wake::Token(id, fetched));
            }
        }
        if let Some((_, sleep)) = timer.as_mut() {
            if sleep.poll_unpin(cx).is_ready() {
                return Poll::Ready(Wake::Timer);
            }
        }
        if let Some(link) = self.link.as_mut() {
            if let Err(e) = drive_writes(link, &self.core, cx) {
                return Poll::Ready(Wake::WriteFailed(link.id, e));
            }
        }
        Poll::Pending
    }

    /// Tells the core which frames may have left. The driver is the only writer and calls
    /// this before every decision of the core, so a frame the core declares "not sent" is
    /// still in the link's queue, and is dropped with it (or skipped, once its request
    /// has ended).
    fn report_written(&mut self) {
        if let Some(link) = self.link.as_mut() {
            let written = link.written;
            if written > link.reported_written {
                link.reported_written = written;
                let id = link.id;
                let now = self.backend.runtime.now();
                self.core
                    .handle_input(now, id, Input::Written { seq: written });
            }
        }
    }

    fn handle_command(&mut self, now: Instant, command: Command) {
        match command {
            Command::Request { op, options, reply } => {
                match self.core.request_with(now, op, options) {
                    Ok(id) => self.replies.insert(id, reply),
                    Err(e) => reply.send(Err(Box::new(e.into()))),
                }
            }
            Command::CancelRequest { cell } => {
                // Commands are handled in order: a request is registered before its
                // cancel arrives; one refused at once has no id and nothing to withdraw.
                if let Some(id) = cell.id::<RequestId>() {
                    if self.replies.withdraw(id) {
                        self.core.cancel(id);
                    }
                }
            }
            Command::Subscribe { spec, sink, reply } => match self.core.subscribe(now, *spec) {
                Ok(id) => {
                    reply.registered(id);
                    let ready = Some(reply);
                    self.subs.insert(id, SubEntry { sink, ready });
                }
                Err(e) => reply.send(Err(Box::new(e.into()))),
            },
            Command::CancelSubscribe { cell } => {
                // As for requests: registered before the cancel arrives, or refused.
                if let Some(id) = cell.id() {
                    if self.subs.remove(&id).is_some() {
                        trace!(%id, "subscribe withdrawn: its future was dropped");
                        self.core.unsubscribe(now, id);
                    }
                }
            }
            Command::Unsubscribe { id, ack } => {
                self.forget_subscription(id);
                self.core.unsubscribe(now, id);
                if let Some(ack) = ack {
                    let _ = ack.send(());
                }
            }
            Command::Counters { reply } => {
                let _ = reply.send(self.core.counters());
            }
            Command::Report(event) => self.shared.notify(&event),
            Command::Close { ack } => {
                if let Some(ack) = ack {
                    self.close_acks.push(ack);
                }
                self.core.close(now);
            }
        }
    }

    fn opened(
        &mut self,
        now: Instant,
        connection: ConnectionId,
        result: std::result::Result<(FrameSink, FrameStream), TransportError>,
    ) {
        match result {
            Ok((sink, stream)) => {
                if let Some(link) = self.link.as_mut().filter(|l| l.id == connection) {
                    link.sink = Some(sink);
                    link.stream = Some(stream);
                }
                self.core.handle_input(now, connection, Input::Opened);
            }
            Err(e) => {
                let reason = e.chain_text();
                self.last_transport_error = Some(e);
                let input = Input::ConnectFailed { reason: &reason };
                self.core.handle_input(now, connection, input);
                self.drop_link(connection);
            }
        }
    }

    /// A frame (or the end) of the current connection's stream.
    fn handle_frame(&mut self, now: Instant, connection: ConnectionId, frame: Option<Incoming>) {
        match frame {
            Some(Incoming::Text(text)) => {
                self.core
                    .handle_input(now, connection, Input::Frame(text.as_str()))
            }
            Some(Incoming::Binary(bytes)) => {
                self.core
                    .handle_input(now, connection, Input::Binary(&bytes))
            }
            Some(Incoming::Closed { code, reason }) => {
                let input = Input::Closed {
                    code,
                    reason: &reason,
                };
                self.core.handle_input(now, connection, input);
                self.drop_link(connection);
            }
            None => {
                let reason = "connection ended";
                self.core
                    .handle_input(now, connection, Input::Closed { code: None, reason });
                self.drop_link(connection);
            }
        }
    }

    /// Forgets a connection: an attempt in progress is abandoned, frames still queued are
    /// dropped (the core has declared them "not sent"), the socket is closed.
    fn drop_link(&mut self, connection: ConnectionId) {
        self.link.take_if(|l| l.id == connection);
    }

    /// Closes a connection with a close frame, flushed alongside the driver's work (at most
    /// [`CLOSE_GRACE`]); queued data frames are dropped, an attempt still connecting is
    /// abandoned at once.
    fn close_link(&mut self, connection: ConnectionId, code: u16, reason: String) {
        let Some(link) = self.link.take_if(|l| l.id == connection) else {
            return;
        };
        let Some(mut sink) = link.sink else { return };
        let grace = self.backend.runtime.sleep(CLOSE_GRACE);
        let close = async move {
            let _ = sink.send(Outgoing::Close { code, reason }).await;
            let _ = sink.close().await;
        };
        self.closing.push(
            futures::future::select(close.boxed(), grace)
                .map(drop)
                .boxed(),
        );
    }

    fn open(&mut self, connection: ConnectionId, url: String) {
        self.link = Some(Link {
            id: connection,
            connecting: Some(self.backend.connector.connect(&url, &self.tls)),
            sink: None,
            stream: None,
            queue: VecDeque::new(),
            unflushed: false,
            written: 0,
            reported_written: 0,
        });
    }

    fn process_outputs(&mut self) {
        while let Some(output) = self.core.poll_output() {
            match output {
                Output::Open { connection, url } => self.open(connection, url),
                Output::Send {
                    connection,
                    seq,
                    text,
                    request,
                } => {
                    if let Some(link) = self.link.as_mut().filter(|l| l.id == connection) {
                        link.queue.push_back(Frame { seq, request, text });
                    }
                }
                Output::Close {
                    connection,
                    code,
                    reason,
                } => self.close_link(connection, code, reason),
                Output::Event(event) => self.dispatch(event),
                Output::FetchToken { id, refresh } => self.fetch_token(id, refresh),
                // An output this driver does not know yet (the core is newer): nothing to do.
                _ => {}
            }
        }
    }

    /// Asks the token provider, isolated: a provider that panics (when called or while
    /// it runs) is reported and counts as a failed fetch. The previous fetch, if any, is
    /// no longer wanted.
    fn fetch_token(&mut self, id: TokenFetchId, refresh: bool) {
        let Some(provider) = self.token_provider.clone() else {
            let now = self.now();
            let reason = "no token provider is configured".to_owned();
            self.core.provide_token(now, id, Err(reason));
            return;
        };
        let request = TokenRequest { refresh };
        let fetch = match std::panic::catch_unwind(AssertUnwindSafe(|| provider.fetch(request))) {
            Ok(future) => AssertUnwindSafe(future).catch_unwind().boxed(),
            Err(panic) => futures::future::ready(Err(panic)).boxed(),
        };
        self.token_fetch = Some((id, fetch));
    }

    fn token_fetched(&mut self, now: Instant, id: TokenFetchId, fetched: Fetched) {
        let token = match fetched {
            Ok(token) => token,
            Err(panic) => {
                let report =
                    crate::shared::callback_panicked("the token provider".to_owned(), &*panic);
                self.shared.notify(&report);
                Err(format!(
                    "the token provider panicked: {}",
                    crate::shared::panic_message(&*panic)
                ))
            }
        };
        self.core.provide_token(now, id, token);
    }

    fn dispatch(&mut self, event: Event) {
        match event {
            Event::Response { id, result } => {
                self.replies
                    .answer(id, result.map_err(|e| Box::new(Error::from(e))));
            }
            Event::Subscription(event) => self.dispatch_subscription(event),
            Event::Lifecycle(event) => self.dispatch_lifecycle(event),
            _ => {}
        }
    }

    fn dispatch_subscription(&mut self, event: SubscriptionEvent) {
        match event {
            SubscriptionEvent::Ready { id, data } => {
                let Some(entry) = self.subs.get_mut(&id) else {
                    return;
                };
                if let Some(data) = data {
                    entry.push(SubItem::Data(data));
                }
                // A future dropped before this answer has withdrawn it already (its cancel
                // came first); one dropped after sends its cancel next.
                if let Some(ready) = entry.ready.take() {
                    ready.send(Ok(id));
                }
            }
            SubscriptionEvent::Restored { id, data, gap } => {
                let Some(entry) = self.subs.get(&id) else {
                    return;
                };
                match data {
                    Some(data) => entry.push(SubItem::Data(data)),
                    None => {
                        let (from, to) = self.wall_clock(gap);
                        entry.push(SubItem::Gap { from, to });
                    }
                }
            }
            SubscriptionEvent::Update { id, data } => {
                if let Some(entry) = self.subs.get(&id) {
                    entry.push(SubItem::Data(data));
                }
            }
            SubscriptionEvent::Failed { id, error } => {
                if let Some(entry) = self.forget_subscription(id) {
                    let error = Error::from(error);
                    match entry.ready {
                        Some(ready) => ready.send(Err(Box::new(error))),
                        None => entry.sink.close(Some(SubItem::Failed(Box::new(error)))),
                    }
                }
            }
            SubscriptionEvent::Ended { id } => {
                if let Some(entry) = self.forget_subscription(id) {
                    match entry.ready {
                        Some(ready) => ready.send(Err(Box::new(Error::Closed {
                            delivery: Delivery::NotSent,
                        }))),
                        None => entry.sink.close(None),
                    }
                }
            }
            _ => {}
        }
    }

    /// Removes a subscription's entry.
    fn forget_subscription(&mut self, id: SubscriptionId) -> Option<SubEntry> {
        self.subs.remove(&id)
    }

    /// A gap's instants on the wall clock.
    fn wall_clock(&self, gap: Gap) -> (SystemTime, SystemTime) {
        let now = self.now();
        let wall = SystemTime::now();
        let at = |instant: Instant| {
            let ago = now.saturating_duration_since(instant);
            wall.checked_sub(ago).unwrap_or(wall)
        };
        (at(gap.from), at(gap.to))
    }

    fn dispatch_lifecycle(&mut self, event: LifecycleEvent) {
        match &event {
            LifecycleEvent::Welcome(info) => self.welcome = Some(info.clone()),
            LifecycleEvent::Disconnected(reason) => self.last_disconnect = Some(reason.clone()),
            LifecycleEvent::StateChanged(state) => self.shared.set_state(*state),
            _ => {}
        }
        self.shared.notify(&event);
        // `connect` returns once the listeners that existed heard the connection come up:
        // one registered after it returns hears only what happens later.
        if matches!(event, LifecycleEvent::Connected) {
            if let (Some(waiter), Some(welcome)) =
                (self.connect_waiter.take(), self.welcome.clone())
            {
                let _ = waiter.send(Ok(welcome));
            }
        }
        // A failed first connection is answered with the reason, which follows the state.
        if let LifecycleEvent::Disconnected(reason) = &event {
            if self.shared.state() == ConnectionState::Disconnected {
                if let Some(waiter) = self.connect_waiter.take() {
                    let transport = self.last_transport_error.take();
                    let _ = waiter.send(Err(connect_error(reason, transport)));
                }
            }
        }
    }
}

/// Why the first connection did not come up, as an error. `transport` is the failed
/// attempt's own error, which keeps its kind and source.
fn connect_error(reason: &DisconnectReason, transport: Option<TransportError>) -> Error {
    match reason {
        DisconnectReason::ConnectFailed(text) => Error::Transport(
            transport
                .unwrap_or_else(|| TransportError::new(TransportErrorKind::Other, text.clone())),
        ),
        DisconnectReason::ConnectTimeout => Error::Timeout {
            delivery: Delivery::NotSent,
        },
        DisconnectReason::ClientClosed => Error::Closed {
            delivery: Delivery::NotSent,
        },
        // Refused credentials (with the server's code) and close codes are typed reasons.
        other => Error::GaveUp(other.clone()),
    }
}

/// Hands queued frames to the socket while it takes them, then flushes. A frame whose
/// request has ended meanwhile is dropped unwritten. Each frame's sequence number is
/// recorded as written before it is handed over: from then on it may leave, and the core
/// is told before it decides anything.
fn drive_writes(
    link: &mut Link,
    core: &ClientCore,
    cx: &mut Context<'_>,
) -> std::result::Result<(), TransportError> {
    let Some(sink) = link.sink.as_mut() else {
        return Ok(());
    };
    while !link.queue.is_empty() {
        match sink.poll_ready_unpin(cx) {
            Poll::Ready(Ok(())) => {
                while let Some(frame) = link.queue.pop_front() {
                    if core.wants_frame(frame.request) {
                        link.written = link.written.max(frame.seq);
                        sink.start_send_unpin(Outgoing::Text(frame.text))?;
                        link.unflushed = true;
                        break;
                    }
                }
            }
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => break,
        }
    }
    if link.unflushed {
        match sink.poll_flush_unpin(cx) {
            Poll::Ready(Ok(())) => link.unflushed = false,
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use noex_proto::ErrorCode;

    #[test]
    fn connect_errors_are_typed() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let transport =
            TransportError::new(TransportErrorKind::Connect, "connecting failed").with_source(io);
        let text = DisconnectReason::ConnectFailed(transport.chain_text());
        match connect_error(&text, Some(transport)) {
            Error::Transport(e) => {
                assert_eq!(e.kind(), TransportErrorKind::Connect);
                assert!(std::error::Error::source(&e).is_some());
            }
            other => panic!("{other:?}"),
        }
        match connect_error(&text, None) {
            Error::Transport(e) => assert_eq!(e.kind(), TransportErrorKind::Other),
            other => panic!("{other:?}"),
        }
        let refused = DisconnectReason::AuthRejected {
            code: ErrorCode::Unauthorized,
            message: "Invalid credentials".into(),
        };
        assert_eq!(
            connect_error(&refused, None).code(),
            Some(&ErrorCode::Unauthorized)
        );
        let closed = DisconnectReason::Closed {
            code: Some(4003),
            reason: "too_many_connections".into(),
        };
        assert_eq!(connect_error(&closed, None).close_code(), Some(4003));
    }
}
