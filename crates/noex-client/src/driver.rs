//! The driver: one task per connected client that owns the protocol core and moves frames
//! between it, the transport and the API handles. Written once, against `futures`.

use crate::error::{Error, Result};
use crate::runtime::{
    Backend, FrameSink, FrameStream, Incoming, Outgoing, TlsOptions, TransportError,
};
use crate::shared::Shared;
use crate::slot::SlotSender;
use futures::channel::{mpsc, oneshot};
use futures::future::BoxFuture;
use futures::{FutureExt, SinkExt, StreamExt};
use noex_proto::{
    ClientCore, ConnectionId, ConnectionState, Counters, Delivery, DisconnectReason, Event, Input,
    LifecycleEvent, Operation, Output, Payload, RequestId, RequestOptions, SubscriptionEvent,
    SubscriptionId, SubscriptionSpec, WelcomeInfo,
};
use std::collections::HashMap;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tracing::{debug, trace};

/// What a subscription's stream receives.
#[derive(Debug)]
pub(crate) enum SubItem {
    Data(Payload),
    Failed(Error),
}

/// Requests from the API handles to the driver.
pub(crate) enum Command {
    Request {
        op: Operation,
        options: RequestOptions,
        reply: oneshot::Sender<Result<Payload>>,
    },
    Subscribe {
        spec: SubscriptionSpec,
        sink: SlotSender<SubItem>,
        reply: oneshot::Sender<Result<SubscriptionId>>,
    },
    Unsubscribe {
        id: SubscriptionId,
        ack: Option<oneshot::Sender<()>>,
    },
    Counters {
        reply: oneshot::Sender<Counters>,
    },
    Close {
        ack: Option<oneshot::Sender<()>>,
    },
}

/// What a connect task reports.
enum Net {
    Opened {
        connection: ConnectionId,
        result: std::result::Result<(FrameSink, FrameStream), TransportError>,
    },
}

/// One open (or opening) transport connection. The driver reads and writes it itself:
/// no reader or writer task, no channel hop per frame.
struct Link {
    id: ConnectionId,
    /// The sending half, once open.
    sink: Option<FrameSink>,
    /// The receiving half, once open.
    stream: Option<FrameStream>,
    /// Frames handed out by the core and not yet handed to the socket.
    queue: VecDeque<(u64, String)>,
    /// Whether frames were handed to the socket since its last flush.
    unflushed: bool,
    /// The highest sequence number handed to the socket (it may have left).
    written: u64,
    reported_written: u64,
}

struct SubEntry {
    sink: SlotSender<SubItem>,
    ready: Option<oneshot::Sender<Result<SubscriptionId>>>,
}

/// Frames queued for the socket that are written even while other work is ready.
const WRITE_BATCH: usize = 64;
/// How long a closing connection may take to flush its close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Frames read from the transport that may wait for the driver.
const NET_BUFFER: usize = 256;

pub(crate) struct Driver {
    core: ClientCore,
    backend: Backend,
    tls: TlsOptions,
    shared: Arc<Shared>,
    commands: mpsc::UnboundedReceiver<Command>,
    net_tx: mpsc::Sender<Net>,
    net_rx: mpsc::Receiver<Net>,
    link: Option<Link>,
    replies: HashMap<RequestId, oneshot::Sender<Result<Payload>>>,
    subs: HashMap<SubscriptionId, SubEntry>,
    connect_waiter: Option<oneshot::Sender<Result<WelcomeInfo>>>,
    welcome: Option<WelcomeInfo>,
    last_disconnect: Option<DisconnectReason>,
    close_acks: Vec<oneshot::Sender<()>>,
    /// Close frames still being flushed when the client closed.
    closing_links: Vec<oneshot::Receiver<()>>,
}

impl Driver {
    pub(crate) fn new(
        core: ClientCore,
        backend: Backend,
        tls: TlsOptions,
        shared: Arc<Shared>,
        commands: mpsc::UnboundedReceiver<Command>,
        connect_waiter: oneshot::Sender<Result<WelcomeInfo>>,
    ) -> Driver {
        let (net_tx, net_rx) = mpsc::channel(NET_BUFFER);
        Driver {
            core,
            backend,
            tls,
            shared,
            commands,
            net_tx,
            net_rx,
            link: None,
            replies: HashMap::new(),
            subs: HashMap::new(),
            connect_waiter: Some(connect_waiter),
            welcome: None,
            last_disconnect: None,
            close_acks: Vec::new(),
            closing_links: Vec::new(),
        }
    }

    /// Runs until the client is closed (explicitly or by dropping every handle).
    pub(crate) async fn run(mut self) {
        self.core.connect(Instant::now());
        self.process_outputs();
        let mut timer: Option<(Instant, BoxFuture<'static, ()>)> = None;
        let mut commands_first = true;
        loop {
            if self.core.is_closed() {
                break;
            }
            // Re-arm only for an earlier deadline: a timer that fires early costs one empty
            // `handle_timeout`, while re-arming on every request would cost a timer
            // registration each time.
            if let Some(next) = self.core.poll_timeout() {
                if timer.as_ref().is_none_or(|(at, _)| next < *at) {
                    let wait = next.saturating_duration_since(Instant::now());
                    timer = Some((next, self.backend.runtime.sleep(wait)));
                }
            }
            enum Wake {
                Command(Option<Command>),
                Net(Net),
                Frame(ConnectionId, Option<Incoming>),
                WriteFailed(ConnectionId, String),
                Timer,
            }
            let wake = poll_fn(|cx| {
                // Writes go out when nothing else is ready (so one flush carries everything
                // queued), or once a batch has piled up.
                if let Some(link) = self.link.as_mut().filter(|l| l.queue.len() >= WRITE_BATCH) {
                    if let Err(e) = drive_writes(link, cx) {
                        return Poll::Ready(Wake::WriteFailed(link.id, e.0));
                    }
                }
                commands_first = !commands_first;
                if commands_first {
                    if let Poll::Ready(c) = self.commands.poll_next_unpin(cx) {
                        return Poll::Ready(Wake::Command(c));
                    }
                }
                if let Some(link) = self.link.as_mut() {
                    if let Some(stream) = link.stream.as_mut() {
                        if let Poll::Ready(frame) = stream.poll_next_unpin(cx) {
                            return Poll::Ready(Wake::Frame(link.id, frame));
                        }
                    }
                }
                if let Poll::Ready(Some(n)) = self.net_rx.poll_next_unpin(cx) {
                    return Poll::Ready(Wake::Net(n));
                }
                if !commands_first {
                    if let Poll::Ready(c) = self.commands.poll_next_unpin(cx) {
                        return Poll::Ready(Wake::Command(c));
                    }
                }
                if let Some((_, sleep)) = timer.as_mut() {
                    if sleep.poll_unpin(cx).is_ready() {
                        return Poll::Ready(Wake::Timer);
                    }
                }
                if let Some(link) = self.link.as_mut() {
                    if let Err(e) = drive_writes(link, cx) {
                        return Poll::Ready(Wake::WriteFailed(link.id, e.0));
                    }
                }
                Poll::Pending
            })
            .await;
            self.report_written();
            let now = Instant::now();
            match wake {
                Wake::Command(Some(command)) => self.handle_command(now, command),
                Wake::Command(None) => self.core.close(now),
                Wake::Net(net) => self.handle_net(now, net),
                Wake::Frame(connection, frame) => self.handle_frame(now, connection, frame),
                Wake::WriteFailed(connection, reason) => {
                    self.core.handle_input(
                        now,
                        connection,
                        Input::Closed {
                            code: None,
                            reason: &reason,
                        },
                    );
                    self.drop_link(connection);
                }
                Wake::Timer => {
                    timer = None;
                    self.core.handle_timeout(now);
                }
            }
            self.process_outputs();
        }
        self.process_outputs();
        // Let the close frame reach the server before saying the client is closed.
        if !self.closing_links.is_empty() {
            let closes = futures::future::join_all(std::mem::take(&mut self.closing_links));
            let grace = self.backend.runtime.sleep(CLOSE_GRACE);
            futures::future::select(closes, grace).await;
        }
        for ack in self.close_acks.drain(..) {
            let _ = ack.send(());
        }
        debug!("driver stopped");
    }

    /// Tells the core which frames may have left. The driver is the only writer and calls
    /// this before every decision of the core, so a frame the core declares "not sent" is
    /// still in the link's queue, and is dropped with it.
    fn report_written(&mut self) {
        if let Some(link) = self.link.as_mut() {
            let written = link.written;
            if written > link.reported_written {
                link.reported_written = written;
                let id = link.id;
                self.core
                    .handle_input(Instant::now(), id, Input::Written { seq: written });
            }
        }
    }

    fn handle_command(&mut self, now: Instant, command: Command) {
        match command {
            Command::Request { op, options, reply } => {
                match self.core.request_with(now, op, options) {
                    Ok(id) => {
                        self.replies.insert(id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                    }
                }
            }
            Command::Subscribe { spec, sink, reply } => match self.core.subscribe(now, spec) {
                Ok(id) => {
                    self.subs.insert(
                        id,
                        SubEntry {
                            sink,
                            ready: Some(reply),
                        },
                    );
                }
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                }
            },
            Command::Unsubscribe { id, ack } => {
                self.subs.remove(&id);
                self.core.unsubscribe(now, id);
                if let Some(ack) = ack {
                    let _ = ack.send(());
                }
            }
            Command::Counters { reply } => {
                let _ = reply.send(self.core.counters().clone());
            }
            Command::Close { ack } => {
                if let Some(ack) = ack {
                    self.close_acks.push(ack);
                }
                self.core.close(now);
            }
        }
    }

    fn handle_net(&mut self, now: Instant, net: Net) {
        match net {
            Net::Opened { connection, result } => {
                let current = self.link.as_ref().is_some_and(|l| l.id == connection);
                match result {
                    Ok((sink, stream)) if current => {
                        self.attach(connection, sink, stream);
                        self.core.handle_input(now, connection, Input::Opened);
                    }
                    Ok(_) => trace!(connection = connection.0, "late connection dropped"),
                    Err(e) => self.core.handle_input(
                        now,
                        connection,
                        Input::ConnectFailed { reason: &e.0 },
                    ),
                }
            }
        }
    }

    /// A frame (or the end) of the current connection's stream.
    fn handle_frame(&mut self, now: Instant, connection: ConnectionId, frame: Option<Incoming>) {
        match frame {
            Some(Incoming::Text(text)) => {
                self.core.handle_input(now, connection, Input::Frame(&text))
            }
            Some(Incoming::Binary(bytes)) => {
                self.core
                    .handle_input(now, connection, Input::Binary(&bytes))
            }
            Some(Incoming::Closed { code, reason }) => {
                self.core.handle_input(
                    now,
                    connection,
                    Input::Closed {
                        code,
                        reason: &reason,
                    },
                );
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

    /// Keeps both halves of a freshly opened connection.
    fn attach(&mut self, connection: ConnectionId, sink: FrameSink, stream: FrameStream) {
        if let Some(link) = self.link.as_mut().filter(|l| l.id == connection) {
            link.sink = Some(sink);
            link.stream = Some(stream);
        }
    }

    /// Forgets a connection: frames still queued are dropped (the core has declared them
    /// "not sent"), the socket is closed.
    fn drop_link(&mut self, connection: ConnectionId) {
        self.link.take_if(|l| l.id == connection);
    }

    /// Closes a connection with a close frame, flushed in the background (at most
    /// [`CLOSE_GRACE`]); queued data frames are dropped.
    fn close_link(&mut self, connection: ConnectionId, code: u16, reason: String) {
        let Some(link) = self.link.take_if(|l| l.id == connection) else {
            return;
        };
        let Some(mut sink) = link.sink else { return };
        let (done_tx, done_rx) = oneshot::channel::<()>();
        if self.core.is_closed() {
            self.closing_links.push(done_rx);
        }
        let grace = self.backend.runtime.sleep(CLOSE_GRACE);
        let close = async move {
            let _ = sink.send(Outgoing::Close { code, reason }).await;
            let _ = sink.close().await;
        };
        self.backend.runtime.spawn(
            async move {
                futures::future::select(close.boxed(), grace).await;
                drop(done_tx);
            }
            .boxed(),
        );
    }

    fn open(&mut self, connection: ConnectionId, url: String) {
        if let Some(old) = self.link.as_ref().map(|l| l.id) {
            self.drop_link(old);
        }
        self.link = Some(Link {
            id: connection,
            sink: None,
            queue: VecDeque::new(),
            unflushed: false,
            written: 0,
            reported_written: 0,
            stream: None,
        });
        let connect = self.backend.connector.connect(&url, &self.tls);
        let mut net = self.net_tx.clone();
        self.backend.runtime.spawn(
            async move {
                let result = connect.await;
                let _ = net.send(Net::Opened { connection, result }).await;
            }
            .boxed(),
        );
    }

    fn process_outputs(&mut self) {
        while let Some(output) = self.core.poll_output() {
            match output {
                Output::Open { connection, url } => self.open(connection, url),
                Output::Send {
                    connection,
                    seq,
                    text,
                } => {
                    if let Some(link) = self.link.as_mut().filter(|l| l.id == connection) {
                        link.queue.push_back((seq, text));
                    }
                }
                Output::Close {
                    connection,
                    code,
                    reason,
                } => self.close_link(connection, code, reason),
                Output::Event(event) => self.dispatch(event),
            }
        }
    }

    fn dispatch(&mut self, event: Event) {
        match event {
            Event::Response { id, result } => {
                if let Some(reply) = self.replies.remove(&id) {
                    let _ = reply.send(result.map_err(Error::from));
                }
            }
            Event::Subscription(event) => self.dispatch_subscription(event),
            Event::Lifecycle(event) => self.dispatch_lifecycle(event),
        }
    }

    fn dispatch_subscription(&mut self, event: SubscriptionEvent) {
        match event {
            SubscriptionEvent::Ready { id, data } => {
                if let Some(entry) = self.subs.get_mut(&id) {
                    if let Some(data) = data {
                        entry.sink.push(SubItem::Data(data));
                    }
                    if let Some(ready) = entry.ready.take() {
                        let _ = ready.send(Ok(id));
                    }
                }
            }
            SubscriptionEvent::Restored {
                id,
                data: Some(data),
            }
            | SubscriptionEvent::Update { id, data } => {
                if let Some(entry) = self.subs.get(&id) {
                    entry.sink.push(SubItem::Data(data));
                }
            }
            SubscriptionEvent::Restored { data: None, .. } => {}
            SubscriptionEvent::Failed { id, error } => {
                if let Some(mut entry) = self.subs.remove(&id) {
                    let error = Error::from(error);
                    match entry.ready.take() {
                        Some(ready) => {
                            let _ = ready.send(Err(error));
                        }
                        None => entry.sink.close(Some(SubItem::Failed(error))),
                    }
                }
            }
        }
    }

    fn dispatch_lifecycle(&mut self, event: LifecycleEvent) {
        match &event {
            LifecycleEvent::Welcome(info) => self.welcome = Some(info.clone()),
            LifecycleEvent::Disconnected(reason) => self.last_disconnect = Some(reason.clone()),
            LifecycleEvent::StateChanged(state) => {
                self.shared.set_state(*state);
                match state {
                    ConnectionState::Connected => {
                        if let (Some(waiter), Some(welcome)) =
                            (self.connect_waiter.take(), self.welcome.clone())
                        {
                            let _ = waiter.send(Ok(welcome));
                        }
                    }
                    ConnectionState::Disconnected => {
                        if let Some(waiter) = self.connect_waiter.take() {
                            let _ = waiter.send(Err(connect_error(self.last_disconnect.as_ref())));
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        self.shared.notify(&event);
    }
}

/// Why the first connection did not come up, as an error.
fn connect_error(reason: Option<&DisconnectReason>) -> Error {
    match reason {
        Some(DisconnectReason::ConnectFailed(e)) => Error::Transport(e.clone()),
        Some(DisconnectReason::ConnectTimeout) => Error::Timeout {
            delivery: Delivery::NotSent,
        },
        Some(DisconnectReason::ClientClosed) => Error::Closed {
            delivery: Delivery::NotSent,
        },
        Some(DisconnectReason::AuthRejected) => {
            Error::Protocol("login rejected by the server".into())
        }
        Some(other) => Error::Transport(format!("{other:?}")),
        None => Error::Disconnected {
            delivery: Delivery::NotSent,
        },
    }
}

/// Hands queued frames to the socket while it takes them, then flushes. Each frame's
/// sequence number is recorded as written before it is handed over: from then on it may
/// leave, and the core is told before it decides anything.
fn drive_writes(link: &mut Link, cx: &mut Context<'_>) -> std::result::Result<(), TransportError> {
    let Some(sink) = link.sink.as_mut() else {
        return Ok(());
    };
    while !link.queue.is_empty() {
        match sink.poll_ready_unpin(cx) {
            Poll::Ready(Ok(())) => {
                if let Some((seq, text)) = link.queue.pop_front() {
                    link.written = link.written.max(seq);
                    sink.start_send_unpin(Outgoing::Text(text))?;
                    link.unflushed = true;
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
