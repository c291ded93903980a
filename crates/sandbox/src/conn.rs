//! The sandbox's HTTP server loop ([`serve`]) and connections that a request handler can cut:
//! every accepted TCP stream is wrapped in a [`KillableStream`] and each request gets a
//! [`ConnHandle`] (as axum `ConnectInfo`). After
//! [`ConnHandle::kill`], the stream fails every read and write, so hyper drops the connection
//! without writing anything more, and the socket is closed with a TCP reset (`SO_LINGER` 0): the
//! client sees "connection reset" (or an early EOF), never a response. Used by `drop` faults.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Default)]
struct KillSwitch {
    killed: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl KillSwitch {
    /// `true` once killed; otherwise remembers the task to wake on kill.
    fn killed(&self, cx: &Context<'_>) -> bool {
        if self.killed.load(Ordering::SeqCst) {
            return true;
        }
        let mut slot = self
            .waker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match slot.as_ref() {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => *slot = Some(cx.waker().clone()),
        }
        drop(slot);
        self.killed.load(Ordering::SeqCst)
    }
}

/// The request's handle on its connection (axum `ConnectInfo<ConnHandle>`).
#[derive(Debug, Clone)]
pub struct ConnHandle {
    /// The client's address.
    pub remote: SocketAddr,
    switch: Arc<KillSwitch>,
}

impl ConnHandle {
    /// Cuts the connection: nothing more is read or written, and it is reset.
    pub fn kill(&self) {
        self.switch.killed.store(true, Ordering::SeqCst);
        let waker = self
            .switch
            .waker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// A TCP stream that fails with `ConnectionReset` once its [`ConnHandle`] was killed.
#[derive(Debug)]
pub struct KillableStream {
    inner: TcpStream,
    switch: Arc<KillSwitch>,
    reset_armed: bool,
}

impl KillableStream {
    fn check(&mut self, cx: &Context<'_>) -> Option<io::Error> {
        if !self.switch.killed(cx) {
            return None;
        }
        if !self.reset_armed {
            // Close with RST rather than FIN when hyper drops the stream.
            let _ = self.inner.set_zero_linger();
            self.reset_armed = true;
        }
        Some(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "connection dropped by an injected fault",
        ))
    }
}

impl AsyncRead for KillableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(error) = this.check(cx) {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(error) = this.check(cx) {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(error) = this.check(cx) {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(error) = this.check(cx) {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(error) = this.check(cx) {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// Serves `router` on `listener` until `stop` turns true, over HTTP/1.1 with **Title-Case header
/// names** on the wire (`Retry-After`, `Content-Type`, ...), as Box's servers send them: some
/// clients (box-sdk-gen reads `headers.get('Retry-After')` from a plain dict) depend on it. Every
/// connection is a [`KillableStream`] and every request carries its connection's
/// `ConnectInfo<ConnHandle>`. Open connections are aborted when serving stops.
///
/// # Errors
/// None in practice (accept errors are logged and retried); the `Result` is for the caller's
/// convenience.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> io::Result<()> {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stop| *stop) => break,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait a little, as axum::serve does.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Reap finished connection tasks now and then.
        while connections.try_join_next().is_some() {}
        let _ = stream.set_nodelay(true);
        let switch = Arc::new(KillSwitch::default());
        let handle = ConnHandle {
            remote,
            switch: Arc::clone(&switch),
        };
        let io = KillableStream {
            inner: stream,
            switch,
            reset_armed: false,
        };
        let router = router.clone();
        let service =
            hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let mut request = request.map(axum::body::Body::new);
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(handle.clone()));
                tower::ServiceExt::oneshot(router.clone(), request)
            });
        connections.spawn(async move {
            let result = hyper::server::conn::http1::Builder::new()
                .title_case_headers(true)
                .keep_alive(true)
                .serve_connection(hyper_util::rt::TokioIo::new(io), service)
                .await;
            if let Err(error) = result {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    connections.abort_all();
    Ok(())
}
