//! Write coalescing for the gateway's HTTP/2 connections.
//!
//! A connection task is woken by each stream that has a frame to send and, scheduled right
//! away, writes that one frame with its own system call: under load, more than one `writev`
//! per forwarded call. [`Coalesce`] makes the task yield once before each write, so every
//! stream that is ready by then adds its frames to the same write. A connection with nothing
//! else going on loses one trip through the scheduler, microseconds; a busy one saves most
//! of its writes.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// An IO object whose writes wait for one yield of the task first.
#[derive(Debug)]
pub struct Coalesce<T> {
    inner: T,
    yielded: bool,
}

impl<T> Coalesce<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            yielded: false,
        }
    }

    /// Ready when the task has yielded since the last write; otherwise schedules the task
    /// again (behind every task already waiting) and answers pending.
    fn poll_turn(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn wrote<R>(&mut self, polled: Poll<R>) -> Poll<R> {
        if polled.is_ready() {
            self.yielded = false;
        }
        polled
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Coalesce<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Coalesce<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_turn(cx));
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_turn(cx));
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test]
    async fn every_write_arrives_after_one_yield() {
        let (client, mut server) = tokio::io::duplex(64);
        let mut client = Coalesce::new(client);
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        // The first attempt only yields.
        assert!(
            Pin::new(&mut client)
                .poll_write(&mut cx, b"ab")
                .is_pending()
        );
        assert!(matches!(
            Pin::new(&mut client).poll_write(&mut cx, b"ab"),
            Poll::Ready(Ok(2))
        ));
        // Awaited writes go through whole, vectored or not.
        client.write_all(b"cd").await.unwrap();
        let written = client
            .write_vectored(&[IoSlice::new(b"e"), IoSlice::new(b"f")])
            .await
            .unwrap();
        assert!(written >= 1, "{written}");
        client.shutdown().await.unwrap();
        let mut received = Vec::new();
        server.read_to_end(&mut received).await.unwrap();
        assert!(received.starts_with(b"abcde"), "{received:?}");
    }
}
