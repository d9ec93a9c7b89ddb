//! The client's two halves of a link: a sink that hands frames to the network, a stream
//! that reads what reached the client.

use super::links::{lock, NetHandle};
use super::wire::Wire;
use futures::{Sink, Stream};
use noex_client::runtime::{Incoming, Outgoing};
use noex_client::TransportError;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The client's sending half of a link. Writes never fail or wait: a frame for a dead
/// link is lost, as on a socket whose peer is gone.
pub(super) struct SimSink<N: NetHandle> {
    pub(super) network: N,
    pub(super) conn: u64,
}

impl<N: NetHandle> Sink<Outgoing> for SimSink<N> {
    type Error = TransportError;

    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, frame: Outgoing) -> Result<(), TransportError> {
        let conn = self.conn;
        self.network.with(|net, clock| match frame {
            Outgoing::Text(text) => {
                let gone = net
                    .links
                    .get(&conn)
                    .is_none_or(|l| l.info.client_gone.is_some());
                if !gone {
                    net.client_sent(conn, Wire::Text(text), clock);
                }
            }
            Outgoing::Close { code, reason } => {
                net.client_gone(conn, Wire::Close { code, reason }, clock)
            }
        });
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        Poll::Ready(Ok(()))
    }
}

impl<N: NetHandle> Drop for SimSink<N> {
    fn drop(&mut self) {
        let conn = self.conn;
        self.network
            .with(|net, clock| net.client_gone(conn, Wire::End, clock));
    }
}

/// The client's receiving half of a link.
pub(super) struct SimStream<N: NetHandle> {
    pub(super) network: N,
    pub(super) conn: u64,
}

impl<N: NetHandle> Stream for SimStream<N> {
    type Item = Incoming;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Incoming>> {
        let now = self.network.elapsed();
        let mut net = lock(self.network.net());
        let Some(link) = net.links.get_mut(&self.conn) else {
            return Poll::Ready(None);
        };
        if let Some(frame) = link.inbox.pop_front() {
            link.info.last_to_client = Some(now);
            if matches!(frame, Incoming::Text(_)) {
                link.info.frames_to_client += 1;
            }
            return Poll::Ready(Some(frame));
        }
        if link.ended {
            return Poll::Ready(None);
        }
        link.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl<N: NetHandle> Drop for SimStream<N> {
    fn drop(&mut self) {
        let conn = self.conn;
        self.network
            .with(|net, clock| net.client_gone(conn, Wire::End, clock));
    }
}
