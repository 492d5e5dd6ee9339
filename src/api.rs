//! The library's narrow face: what the binary (`src/main.rs`), the integration tests,
//! the benches and the fuzz targets may use, under the rooms' names. Every room itself
//! is private to the crate, so the compiler finds what nothing uses (docs/design.md,
//! "Rooms").

pub mod app {
    pub use crate::app::{AppError, ControllerArgs, Running, Settings, run, runtime, start};
}

pub mod auth {
    pub use crate::auth::{
        CookieSecret, HANDOFF_TTL, HandoffCodec, HandoffError, Ticket, is_safe_path,
    };

    pub mod cookies {
        pub use crate::auth::cookies::{
            SessionCookie, in_family, read_chunked, set_cookie_name, strip_cookies, strip_family,
        };
    }

    pub mod handoff {
        pub use crate::auth::handoff::MAX_CLOCK_SKEW;
    }

    pub mod seal {
        pub use crate::auth::seal::{Purpose, Sealer};
    }
}

pub mod config {
    pub use crate::config::{Config, DirectoryProvider, DirectorySettings, Secret, check};
}

pub mod dev {
    pub use crate::dev::{DevOptions, run, serve_echo};
}

pub mod devidp {
    pub use crate::devidp::{DevClient, DevIdpConfig, DevIdpError, DevUser, RunningIdp, start};
}

pub mod directory {
    pub use crate::directory::{
        Client, Directory, Options, PageSizes, Snapshot, Status, UserStatus, Verdict, sync,
    };

    pub mod okta {
        pub use crate::directory::okta::{
            RateInfo, next_link, parse_links, server_date, wait_after_429, wait_before_next,
        };
    }
}

pub mod kube {
    pub mod annotations {
        pub use crate::kube::annotations::{POMERIUM_PREFIX, PREFIX, parse};
    }

    pub mod crd {
        pub use crate::kube::crd::{
            CONDITION_ACCEPTED, CRD_NAME, IdentityPolicy, IdentityPolicySpec, REASON_VALID,
            TargetRef, crd_yaml,
        };
    }

    pub mod gateway {
        pub use crate::kube::gateway::{BUNDLE_VERSION, CONTROLLER_NAME};

        pub mod api {
            pub use crate::kube::gateway::api::{Gateway, GatewayClass, HTTPRoute, ReferenceGrant};
        }
    }

    pub mod index {
        pub use crate::kube::index::ObjectKey;

        pub mod gateway {
            pub use crate::kube::index::gateway::service_name;
        }
    }
}

pub mod policy {
    pub use crate::policy::{Identity, Input, Outcome, Policy, Request, Shorthands};

    pub mod cli {
        pub use crate::policy::cli::eval_cli;
    }
}

pub mod proxy {
    pub use crate::proxy::{Limits, LogFields};

    pub mod tls {
        pub use crate::proxy::tls::PemPair;
    }
}

pub mod routes {
    pub use crate::routes::{
        BackendSpec, Balance, EndpointSpec, HostMatch, Model, PathMatch, Reach, RouteOptions,
        RouteSpec, RoutingTable, UpstreamHost, UpstreamScheme, build,
    };

    pub mod path {
        pub use crate::routes::path::{canonical, interpreted, lenient};
    }
}

pub mod sync {
    pub use crate::sync::lock;
}

pub mod telemetry {
    pub use crate::telemetry::{LogFormat, flush_logs, init_logging};
}
