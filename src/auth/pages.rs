//! The pages of the sign-in endpoints: who am I, sign out, signed out, and messages.

use http::{HeaderValue, Response, StatusCode};

use crate::reply::Body;
use crate::reply::pages::{escape, html_page};

/// A page with a title and one sentence.
pub fn message(
    status: StatusCode,
    title: &str,
    detail: &str,
    request_id: &HeaderValue,
) -> Response<Body> {
    let body = format!(
        "<p>{}</p><dl><dt>Request ID</dt><dd><code>{}</code></dd></dl>",
        escape(detail),
        escape(request_id.to_str().unwrap_or(""))
    );
    html_page(status, title, &body, request_id)
}

/// Who the user page describes.
pub struct UserView<'a> {
    pub name: &'a str,
    pub email: &'a str,
    pub sub: &'a str,
    pub groups: &'a [String],
    /// When the session ends (unix seconds).
    pub expires: i64,
}

/// `/.portcullis/`: who you are, your groups, when the session ends, and sign-out.
pub fn user(
    session: &UserView<'_>,
    groups_source: &str,
    directory_problem: Option<&str>,
    csrf: &str,
    request_id: &HeaderValue,
) -> Response<Body> {
    let groups = if session.groups.is_empty() {
        "<dd>none</dd>".to_string()
    } else {
        session
            .groups
            .iter()
            .map(|g| format!("<dd><code>{}</code></dd>", escape(g)))
            .collect()
    };
    let expires = jiff::Timestamp::from_second(session.expires)
        .map(|t| t.to_string())
        .unwrap_or_default();
    let body = format!(
        "<dl><dt>Name</dt><dd>{name}</dd><dt>Email</dt><dd>{email}</dd>\
         <dt>User ID</dt><dd><code>{sub}</code></dd>\
         <dt>Groups <small>(from the {source})</small></dt>{groups}\
         <dt>Session ends</dt><dd><time datetime=\"{expires}\">{expires}</time></dd></dl>\
         {problem}{form}",
        source = escape(groups_source),
        problem = directory_problem
            .map(|p| format!(
                "<p role=\"alert\"><strong>Access is denied:</strong> {}</p>",
                escape(p)
            ))
            .unwrap_or_default(),
        name = escape(session.name),
        email = escape(session.email),
        sub = escape(session.sub),
        expires = escape(&expires),
        form = sign_out_form(csrf),
    );
    html_page(StatusCode::OK, "You are signed in", &body, request_id)
}

/// The confirmation page for `GET /.portcullis/sign_out`.
pub fn sign_out(csrf: &str, request_id: &HeaderValue) -> Response<Body> {
    let body = format!(
        "<p>Sign out of every application behind Portcullis?</p>{}",
        sign_out_form(csrf)
    );
    html_page(StatusCode::OK, "Sign out", &body, request_id)
}

pub fn signed_out(request_id: &HeaderValue) -> Response<Body> {
    html_page(
        StatusCode::OK,
        "You are signed out",
        "<p>You can close this window, or go back to the application to sign in again.</p>",
        request_id,
    )
}

fn sign_out_form(csrf: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/.portcullis/sign_out\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <button type=\"submit\" id=\"sign-out\">Sign out</button></form>",
        escape(csrf)
    )
}
