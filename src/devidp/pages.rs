//! The provider's HTML: the login page that picks a demo user, the signed-out page, error
//! pages and an index. Plain and accessible, with no external assets (the
//! Content-Security-Policy sent with them allows none).
//!
//! Login page element ids, for browser tests: one submit button `user-<sub>` per demo
//! user, `cancel` to refuse the sign-in; the form is `login`, its hidden field `pending`.

use super::DevUser;

/// The heading of every page: nobody should mistake this for a real sign-in.
pub(super) const TITLE: &str = "Portcullis development sign-in — not for production";

const STYLE: &str = "\
body{font:16px/1.5 system-ui,sans-serif;margin:0;color:#111;background:#fafafa}\
.banner{margin:0;padding:.75rem 1rem;background:#ffd400;color:#000;border-bottom:3px solid #000}\
main{max-width:40rem;margin:2rem auto;padding:0 1rem}\
h1{font-size:1.5rem}\
ul{list-style:none;padding:0}\
li{margin:.5rem 0}\
button{font:inherit;width:100%;text-align:left;padding:.75rem 1rem;border:2px solid #1a4dab;\
border-radius:.375rem;background:#fff;color:#111;cursor:pointer}\
button:hover{background:#eef3fc}\
button:focus-visible{outline:3px solid #000;outline-offset:2px}\
button.secondary{border-color:#555;width:auto}\
.name{font-weight:600;display:block}\
.detail{color:#333;display:block}\
fieldset{border:0;padding:0;margin:0}\
legend{font-weight:600;padding:0}\
code{word-break:break-all}";

fn layout(title: &str, main: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"robots\" content=\"noindex\">\n\
         <title>{title} — Portcullis development provider</title>\n\
         <style>{STYLE}</style>\n</head>\n<body>\n\
         <p class=\"banner\" role=\"note\"><strong>Development only.</strong> This OpenID \
         provider comes with <code>portcullis dev</code> for trying Portcullis on this \
         machine. It has no passwords and believes whoever clicks. Never use it in \
         production.</p>\n<main>\n{main}\n</main>\n</body>\n</html>\n",
        title = escape(title),
    )
}

/// The user picker that answers a valid `/authorize` request.
pub(super) fn login(
    pending: &str,
    client_id: &str,
    redirect_uri: &str,
    users: &[DevUser],
) -> String {
    let mut buttons = String::new();
    for user in users {
        let groups = if user.groups.is_empty() {
            "no groups".to_owned()
        } else {
            format!("groups: {}", user.groups.join(", "))
        };
        buttons.push_str(&format!(
            "<li><button type=\"submit\" name=\"user\" value=\"{sub}\" id=\"user-{sub}\">\
             <span class=\"name\">{name}</span>\
             <span class=\"detail\">{email}</span>\
             <span class=\"detail\">{groups}</span></button></li>\n",
            sub = escape(&user.sub),
            name = escape(&user.name),
            email = escape(&user.email),
            groups = escape(&groups),
        ));
    }
    layout(
        "Sign in",
        &format!(
            "<h1>{TITLE}</h1>\n\
             <p>Signing in to <strong>{client}</strong>, which will receive you at \
             <code>{redirect}</code>.</p>\n\
             <form id=\"login\" method=\"post\" action=\"/authorize\">\n\
             <input type=\"hidden\" name=\"pending\" value=\"{pending}\">\n\
             <fieldset>\n<legend>Sign in as one of the demo users</legend>\n\
             <ul>\n{buttons}</ul>\n</fieldset>\n\
             <p><button type=\"submit\" name=\"cancel\" value=\"1\" id=\"cancel\" \
             class=\"secondary\">Cancel sign-in</button></p>\n</form>",
            client = escape(client_id),
            redirect = escape(redirect_uri),
            pending = escape(pending),
        ),
    )
}

/// `/logout` without a registered place to return to.
pub(super) fn signed_out() -> String {
    layout(
        "Signed out",
        &format!(
            "<h1>{TITLE}</h1>\n<p id=\"signed-out\">You are signed out of the development \
             provider. You can close this tab.</p>"
        ),
    )
}

/// A request this provider refuses without redirecting back (RFC 6749 section 4.1.2.1:
/// never redirect to an unverified URI).
pub(super) fn error(heading: &str, message: &str) -> String {
    layout(
        heading,
        &format!(
            "<h1>{TITLE}</h1>\n<h2 id=\"error\">{heading}</h2>\n<p>{message}</p>",
            heading = escape(heading),
            message = escape(message),
        ),
    )
}

/// `/`: what this is and where discovery lives.
pub(super) fn index(issuer: &str) -> String {
    let discovery = format!("{issuer}/.well-known/openid-configuration");
    layout(
        "Development provider",
        &format!(
            "<h1>{TITLE}</h1>\n<p>Issuer <code>{issuer}</code>; discovery at \
             <a href=\"{d}\"><code>{d}</code></a>.</p>",
            issuer = escape(issuer),
            d = escape(&discovery),
        ),
    )
}

/// Escapes text for HTML content and double-quoted attribute values.
pub(super) use crate::reply::pages::escape;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_page_lists_users_with_ids_and_escapes() {
        let mut users = DevUser::demo_users();
        users.push(DevUser {
            sub: "x\"><script>".into(),
            email: "e@x".into(),
            name: "<b>".into(),
            groups: vec![],
        });
        let html = login("p&1", "portcullis", "http://a.localhost/cb?x=1&y=2", &users);
        assert!(html.contains(TITLE));
        for u in &users[..3] {
            assert!(
                html.contains(&format!("id=\"user-{}\"", u.sub)),
                "{}",
                u.sub
            );
        }
        assert!(html.contains("id=\"user-x&quot;&gt;&lt;script&gt;\""));
        assert!(html.contains("&lt;b&gt;"));
        assert!(!html.contains("<script>"));
        assert!(html.contains("name=\"pending\" value=\"p&amp;1\""));
        assert!(html.contains("cb?x=1&amp;y=2"));
        assert!(html.contains("groups: admin, engineering"));
        assert!(html.contains("no groups"));
        assert!(html.contains("id=\"cancel\""));
        // No external assets.
        for needle in ["src=", "<link", "url("] {
            assert!(!html.contains(needle), "{needle}");
        }
    }

    #[test]
    fn escapes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
