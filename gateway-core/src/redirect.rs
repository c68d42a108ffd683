//! CGI local redirects (RFC 3875 §6.2.2): a response that asks the server to answer the
//! request itself, as a GET of another path.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::FutureExt as _;
use futures_util::future::Fuse;

use crate::{App, Body, Environ, Response};

/// The most local redirects one request may follow.
const MAX_HOPS: usize = 10;

/// Marks a response as a local redirect; [`LocalRedirects`] answers it by re-dispatching.
#[derive(Clone, Debug)]
pub struct LocalRedirect {
    /// The new path, absolute from the server's root, with an optional `?query`.
    pub location: Bytes,
    /// The request's environ, as the redirecting app received it.
    pub environ: Environ,
}

impl Response {
    /// A local redirect to `location` (`/path[?query]`). Without the [`LocalRedirects`]
    /// middleware it is an ordinary 302.
    pub fn local_redirect(location: impl Into<Bytes>, environ: Environ) -> Response {
        let location = location.into();
        let mut res = Response::new(302).with_header("Location", location.clone());
        res.extensions.insert(LocalRedirect { location, environ });
        res
    }
}

/// Answers local redirects by running the request again, as a GET without a body, for the
/// new path (at most 10 times; then 500). The path is taken below the host's `SCRIPT_NAME`
/// (gatewayd's own path when it runs as a CGI program); a path outside it cannot be served
/// here and is sent to the client as a 302.
#[derive(Clone, Debug)]
pub struct LocalRedirects<A> {
    inner: A,
}

impl<A> LocalRedirects<A> {
    /// Follows local redirects answered by `inner` (usually the router).
    pub fn new(inner: A) -> Self {
        LocalRedirects { inner }
    }
}

impl<A: App> App for LocalRedirects<A> {
    fn call(&self, env: Environ, body: Body) -> impl Future<Output = Response> + Send {
        // The call is made now (see `App`'s docs on middleware).
        let host_script = env.get_bytes("SCRIPT_NAME").unwrap_or_default();
        Redirecting {
            call: self.inner.call(env, body).fuse(),
            inner: &self.inner,
            host_script,
            following: None,
        }
    }
}

/// The redirects a request follows: boxed, a rare path, which would otherwise make every
/// request's future larger.
type Following<'a> = Pin<Box<dyn Future<Output = Response> + Send + 'a>>;

pin_project_lite::pin_project! {
    /// A call under [`LocalRedirects`]: its response, or what its local redirects lead to.
    struct Redirecting<'a, A, F> {
        // Dropped once it answers (`Fuse` does): a redirect followed holds nothing of the
        // first call (its place under `Limit`, for one).
        #[pin]
        call: Fuse<F>,
        inner: &'a A,
        host_script: Bytes,
        following: Option<Following<'a>>,
    }
}

impl<'a, A: App, F: Future<Output = Response>> Future for Redirecting<'a, A, F> {
    type Output = Response;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let this = self.project();
        if let Some(following) = this.following {
            return following.as_mut().poll(cx);
        }
        let res = std::task::ready!(this.call.poll(cx));
        if !is_local(&res) {
            return Poll::Ready(res);
        }
        let inner: &'a A = this.inner;
        let host_script = std::mem::take(this.host_script);
        let following = this.following.insert(Box::pin(async move {
            follow(&host_script, res, |env| inner.call(env, Body::empty())).await
        }));
        following.as_mut().poll(cx)
    }
}

/// Whether a response is a local redirect, for [`follow`] to answer.
fn is_local(res: &Response) -> bool {
    res.extensions.get::<LocalRedirect>().is_some()
}

/// Answers `res`'s local redirects, if any, with what `ask` answers to each redirected request
/// (a GET without a body), below `host_script`: the request's `SCRIPT_NAME` before any
/// routing.
async fn follow<F>(host_script: &[u8], mut res: Response, ask: impl Fn(Environ) -> F) -> Response
where
    F: Future<Output = Response>,
{
    for _ in 0..MAX_HOPS {
        let Some(LocalRedirect { location, environ }) = res.extensions.remove::<LocalRedirect>()
        else {
            return res;
        };
        let Some(env) = redirected(environ, host_script, &location) else {
            return res; // outside our SCRIPT_NAME: the 302 it already is
        };
        tracing::debug!(location = %String::from_utf8_lossy(&location), "following a local redirect");
        res = ask(env).await;
    }
    tracing::error!("more than {MAX_HOPS} local redirects");
    Response::error(500)
}

/// The environ of the redirected request: a GET of `location` below `host_script`.
fn redirected(mut env: Environ, host_script: &[u8], location: &[u8]) -> Option<Environ> {
    let (path, query) = match location.iter().position(|&b| b == b'?') {
        Some(q) => (&location[..q], &location[q + 1..]),
        None => (location, &b""[..]),
    };
    // A path the front server would have judged otherwise than as written (dot segments, an
    // encoded slash) goes back to the client as the 302 it is: the front server's rules then
    // apply to it, as to any request.
    let decoded = percent_encoding::percent_decode(path).collect::<Vec<u8>>();
    if crate::ambiguous_path(path).is_some() || crate::path::has_dot_segment(&decoded) {
        return None;
    }
    let path = decoded;
    let below = path.strip_prefix(host_script)?;
    if !(below.is_empty() || below.starts_with(b"/")) {
        return None;
    }
    env.insert("REQUEST_METHOD", "GET");
    env.insert("SCRIPT_NAME", Bytes::copy_from_slice(host_script));
    env.insert("PATH_INFO", Bytes::copy_from_slice(below));
    env.insert("QUERY_STRING", Bytes::copy_from_slice(query));
    env.insert("REQUEST_URI", Bytes::copy_from_slice(location));
    env.remove("CONTENT_LENGTH");
    env.remove("CONTENT_TYPE");
    env.insert("REDIRECT_STATUS", "200");
    Some(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Protocol, Router, app_fn};

    fn router() -> Router {
        let mut r = Router::new();
        r.mount(
            "/",
            app_fn(|env: Environ, _| async move {
                match env.path_info() {
                    b"/start" => Response::local_redirect("/target?x=%20", env),
                    b"/loop" => Response::local_redirect("/loop", env),
                    b"/away" => Response::local_redirect("/elsewhere", env),
                    b"/dots" => Response::local_redirect("/x/%2e%2e/admin", env),
                    b"/slash" => Response::local_redirect("/x%2fy", env),
                    _ => Response::text(
                        200,
                        format!(
                            "{} {}{} {}",
                            env.method(),
                            String::from_utf8_lossy(env.script_name()),
                            String::from_utf8_lossy(env.path_info()),
                            String::from_utf8_lossy(env.query_string())
                        ),
                    ),
                }
            }),
        )
        .unwrap();
        r
    }

    fn run(script: &str, path: &str) -> (u16, String) {
        let app = LocalRedirects::new(router());
        let mut env = Environ::new(Protocol::Cgi);
        env.insert("REQUEST_METHOD", "POST");
        env.insert("SCRIPT_NAME", script.to_owned());
        env.insert("PATH_INFO", path.to_owned());
        env.insert("CONTENT_LENGTH", "3");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let res = rt.block_on(app.call(env, Body::from("abc")));
        let body = rt.block_on(res.body.to_bytes()).unwrap();
        (res.status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[test]
    fn redirects_are_followed_as_get() {
        assert_eq!(run("", "/start"), (200, "GET /target x=%20".into()));
        assert_eq!(run("", "/loop").0, 500);
    }

    #[test]
    fn below_the_host_script_name_only() {
        // As a CGI program at /cgi-bin/gw, "/elsewhere" is not ours: it goes to the client.
        assert_eq!(run("/cgi-bin/gw", "/away").0, 302);
    }

    #[test]
    fn a_path_the_front_server_would_judge_goes_to_the_client() {
        // Followed inside, `/x/../admin` would reach a mount past the front server's rules.
        assert_eq!(run("", "/dots").0, 302);
        assert_eq!(run("", "/slash").0, 302);
    }
}
