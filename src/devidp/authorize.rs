//! `/authorize`: checks the request, shows the login page, and turns the user picked
//! there into a single-use code.
//!
//! - `GET` (or a `POST` without `pending`, OIDC Core section 3.1.2.1): `client_id` and
//!   `redirect_uri` (required, compared exactly) come first; when either is wrong the
//!   answer is a 400 page and no redirect (RFC 6749 section 4.1.2.1). Every other error
//!   goes back to the redirect URI with `error`, `error_description` and `state`:
//!   `response_type` must be `code`; `scope` must hold `openid` and only supported
//!   scopes; `state` is required (as Okta requires it); PKCE is required, with
//!   `code_challenge_method=S256`; `prompt=none` gets `login_required` (there is no
//!   provider session); `request` and `request_uri` are not supported. A valid request
//!   is kept server-side under a random id and the login page is shown.
//! - `POST` with `pending` (that id) and `user=<sub>`: 302 to
//!   `redirect_uri?code=…&state=…`; with `cancel` instead: `error=access_denied`.

use std::time::Instant;

use http::{Response, StatusCode};

use super::endpoints::{Body, html, redirect};
use super::form::{Params, with_query};
use super::store::{AuthorizationRequest, CodeGrant};
use super::{CODE_LIFETIME, Idp, PENDING_LIFETIME, now_unix, pages, random_token};

/// The scopes this provider grants (Okta's, for an app with a `groups` claim).
pub(super) const SCOPES: [&str; 5] = ["openid", "profile", "email", "groups", "offline_access"];

/// A request refused without redirecting: its client or redirect URI can't be trusted.
fn refuse(message: &str) -> Response<Body> {
    html(
        StatusCode::BAD_REQUEST,
        pages::error("Sign-in request refused", message),
    )
}

/// An error sent back to a verified redirect URI (RFC 6749 section 4.1.2.1).
fn error_redirect(
    redirect_uri: &str,
    error: &str,
    description: &str,
    state: Option<&str>,
) -> Response<Body> {
    let mut pairs = vec![("error", error), ("error_description", description)];
    if let Some(state) = state {
        pairs.push(("state", state));
    }
    redirect(&with_query(redirect_uri, &pairs))
}

/// Whether `s` is a PKCE value: RFC 7636's unreserved characters only.
pub(super) fn pkce_charset(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// An authorization request: the login page, or an error.
pub(super) fn start(idp: &Idp, params: Result<Params, String>) -> Response<Body> {
    let params = match params {
        Ok(p) => p,
        Err(message) => return refuse(&message),
    };
    let Some(client) = params.get("client_id").and_then(|id| idp.client(id)) else {
        return refuse("The client_id is missing or not registered.");
    };
    let Some(redirect_uri) = params.get("redirect_uri") else {
        return refuse("The redirect_uri is missing.");
    };
    if !client.redirect_uris.iter().any(|u| u == redirect_uri) {
        return refuse(&format!(
            "The redirect_uri {redirect_uri} is not registered for client {}.",
            client.client_id
        ));
    }
    let state = params.get("state");
    let fail =
        |error: &str, description: &str| error_redirect(redirect_uri, error, description, state);

    if params.get("request").is_some() {
        return fail(
            "request_not_supported",
            "Request objects are not supported.",
        );
    }
    if params.get("request_uri").is_some() {
        return fail("request_uri_not_supported", "request_uri is not supported.");
    }
    match params.get("response_type") {
        Some("code") => {}
        None => return fail("invalid_request", "response_type is required."),
        Some(_) => {
            return fail(
                "unsupported_response_type",
                "Only response_type=code is supported.",
            );
        }
    }
    if params.get("response_mode").is_some_and(|m| m != "query") {
        return fail("invalid_request", "Only response_mode=query is supported.");
    }
    let mut scopes: Vec<String> = Vec::new();
    for scope in params.get("scope").unwrap_or("").split_ascii_whitespace() {
        if !SCOPES.contains(&scope) {
            return fail(
                "invalid_scope",
                &format!("The scope {scope} is not supported."),
            );
        }
        if !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    }
    if !scopes.iter().any(|s| s == "openid") {
        return fail("invalid_scope", "The scope must include openid.");
    }
    let Some(state) = state else {
        return fail("invalid_request", "state is required.");
    };
    match params.get("code_challenge_method") {
        Some("S256") => {}
        None => {
            return fail(
                "invalid_request",
                "PKCE is required: send code_challenge_method=S256 and a code_challenge.",
            );
        }
        Some(_) => {
            return fail(
                "invalid_request",
                "Only code_challenge_method=S256 is supported.",
            );
        }
    }
    let Some(code_challenge) = params
        .get("code_challenge")
        .filter(|c| c.len() == 43 && pkce_charset(c))
    else {
        return fail(
            "invalid_request",
            "code_challenge must be the base64url SHA-256 of the code_verifier (43 characters).",
        );
    };
    let prompts = params.get("prompt").unwrap_or("");
    if prompts.split_ascii_whitespace().any(|p| p == "none") {
        return fail(
            "login_required",
            "The development provider keeps no session; every sign-in shows the user list.",
        );
    }

    let request = AuthorizationRequest {
        client_id: client.client_id.clone(),
        redirect_uri: redirect_uri.to_owned(),
        scopes,
        state: state.to_owned(),
        nonce: params.get("nonce").map(str::to_owned),
        code_challenge: code_challenge.to_owned(),
    };
    let pending = random_token();
    idp.store()
        .pending
        .insert(pending.clone(), request, PENDING_LIFETIME, Instant::now());
    html(
        StatusCode::OK,
        pages::login(&pending, &client.client_id, redirect_uri, &idp.users),
    )
}

/// A `POST` to `/authorize`: the login page's answer, or an authorization request.
pub(super) fn post(idp: &Idp, form: Result<Params, String>) -> Response<Body> {
    let form = match form {
        Ok(f) => f,
        Err(message) => return refuse(&message),
    };
    let Some(pending) = form.get("pending") else {
        return start(idp, Ok(form));
    };
    let cancelled = form.get("cancel").is_some();
    let user = form.get("user").and_then(|sub| idp.user(sub));
    if user.is_none() && !cancelled {
        return refuse("Pick one of the listed users.");
    }
    let now = Instant::now();
    let mut store = idp.store();
    let Some(request) = store.pending.take(pending, now) else {
        return refuse(
            "This sign-in request is unknown or has expired. Go back to the application \
             and sign in again.",
        );
    };
    let Some(user) = user.filter(|_| !cancelled) else {
        return error_redirect(
            &request.redirect_uri,
            "access_denied",
            "The user cancelled the sign-in.",
            Some(&request.state),
        );
    };
    let code = random_token();
    let location = with_query(
        &request.redirect_uri,
        &[("code", &code), ("state", &request.state)],
    );
    tracing::info!(
        sub = %user.sub,
        client_id = %request.client_id,
        "development OpenID provider: signed in"
    );
    let grant = CodeGrant {
        request,
        sub: user.sub.clone(),
        auth_time: now_unix(),
    };
    store.codes.insert(code, grant, CODE_LIFETIME, now);
    redirect(&location)
}
