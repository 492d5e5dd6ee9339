//! The sign-in handoff token under a fixed key. The first byte picks what the rest is:
//! - `0`: a token as received in the callback URL — it must never verify (forging one
//!   means breaking ChaCha20-Poly1305);
//! - `1`: a payload sealed under the right key and purpose, as a replica of ours that
//!   wrote garbage (or a future format) would — decoding must not panic, and whatever
//!   verifies satisfies the codec's promises;
//! - `2` and above: ticket fields, one per line (target, return path, session id, nonce
//!   tag, credential) — a token issued for them verifies back to exactly them, expires,
//!   is refused for another host, and fails once any character is changed, dropped or
//!   added.
#![no_main]

use std::sync::LazyLock;
use std::time::Duration;

use jiff::Timestamp;
use libfuzzer_sys::fuzz_target;
use portcullis::api::auth::seal::{Purpose, Sealer};
use portcullis::api::auth::{
    CookieSecret, HANDOFF_TTL, HandoffCodec, HandoffError, Ticket, is_safe_path,
};

const TARGET: &str = "app.example.com:443";
/// `auth::handoff::MAX_CLOCK_SKEW`.
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5);
const URL_SAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

struct Fixed {
    codec: HandoffCodec,
    sealer: Sealer,
}

static FIXED: LazyLock<Fixed> = LazyLock::new(|| {
    let mut key = [0u8; 32];
    for (i, b) in key.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37).wrapping_add(11);
    }
    let keys = CookieSecret::from_bytes(key)
        .expect("32 distinct bytes")
        .derive();
    Fixed {
        codec: HandoffCodec::new(&keys.handoff),
        sealer: Sealer::new(&keys.handoff),
    }
});

fn now() -> Timestamp {
    Timestamp::from_second(1_717_583_400).expect("in range")
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let fixed = &*FIXED;
    match mode {
        0 => {
            let Ok(token) = std::str::from_utf8(rest) else {
                return;
            };
            let got = fixed.codec.verify(token, TARGET, now());
            assert_eq!(got, Err(HandoffError::Invalid), "forged: {token:?}");
        }
        1 => {
            let token = fixed.sealer.seal(Purpose::HANDOFF, rest);
            if let Ok(h) = fixed.codec.verify(&token, TARGET, now()) {
                assert_eq!(h.target, TARGET);
                assert!(is_safe_path(&h.return_path), "{h:?}");
                let exp = h.expires_at.as_second();
                assert!(exp > now().as_second(), "{h:?}");
                assert!(
                    exp <= now().as_second() + (HANDOFF_TTL + MAX_CLOCK_SKEW).as_secs() as i64,
                    "{h:?}"
                );
                assert_eq!(h.jti.len(), 32);
            }
            // The same payload under another purpose never opens as a handoff.
            let session = fixed.sealer.seal(Purpose::SESSION, rest);
            assert_eq!(
                fixed.codec.verify(&session, TARGET, now()),
                Err(HandoffError::Invalid)
            );
        }
        _ => round_trip(mode, rest),
    }
});

fn round_trip(mode: u8, rest: &[u8]) {
    let fixed = &*FIXED;
    let mut fields = rest.splitn(5, |b| *b == b'\n');
    let mut text = || std::str::from_utf8(fields.next().unwrap_or_default()).ok();
    let (Some(target), Some(return_path), Some(sid), Some(nonce_tag)) =
        (text(), text(), text(), text())
    else {
        return;
    };
    let credential = fields.next().unwrap_or_default();
    let ticket = Ticket {
        credential,
        sid,
        target,
        return_path,
        nonce_tag,
    };
    let Ok(token) = fixed.codec.issue(&ticket, now()) else {
        return;
    };
    assert!(token.bytes().all(|b| URL_SAFE.contains(&b)), "{token}");
    let h = fixed
        .codec
        .verify(&token, target, now())
        .expect("a token we issued verifies");
    assert_eq!(
        (
            &*h.credential,
            &*h.sid,
            &*h.target,
            &*h.return_path,
            &*h.nonce_tag
        ),
        (credential, sid, target, return_path, nonce_tag)
    );
    assert_eq!(h.expires_at.as_second(), now().as_second() + 60);
    let late = Timestamp::from_second(now().as_second() + HANDOFF_TTL.as_secs() as i64).unwrap();
    assert_eq!(
        fixed.codec.verify(&token, target, late),
        Err(HandoffError::Expired)
    );
    let other = format!("{target}x");
    assert_eq!(
        fixed.codec.verify(&token, &other, now()),
        Err(HandoffError::WrongHost)
    );

    // Mutations: one character changed, one dropped, one added. Position and
    // replacement come from the input, so the fuzzer explores them.
    let seed = rest.iter().fold(u32::from(mode), |a, b| {
        a.wrapping_mul(31).wrapping_add(u32::from(*b))
    }) as usize;
    let at = seed % token.len();
    let mut bytes = token.clone().into_bytes();
    let old = bytes[at];
    bytes[at] = URL_SAFE
        .iter()
        .copied()
        .cycle()
        .skip(seed / 7 % URL_SAFE.len())
        .find(|c| *c != old)
        .expect("another character");
    let changed = String::from_utf8(bytes).expect("ASCII");
    let mut dropped = token.clone();
    dropped.remove(at);
    let mut added = token.clone();
    added.insert(at, URL_SAFE[seed / 3 % URL_SAFE.len()] as char);
    for (what, bad) in [("changed", changed), ("dropped", dropped), ("added", added)] {
        assert_eq!(
            fixed.codec.verify(&bad, target, now()),
            Err(HandoffError::Invalid),
            "{what} at {at}: {bad}"
        );
    }
}
