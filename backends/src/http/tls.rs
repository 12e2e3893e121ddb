//! The connector of `HttpStore`: plain `http://` always, and `https://` through rustls (the
//! `ring` provider, the webpki root certificates and any extra roots of the configuration)
//! when the `tls` feature is on.

use std::time::Duration;

use blobjobs_store_api::Result;
use hyper_util::client::legacy::connect::HttpConnector;

use super::config::HttpConfig;

/// The connector type of the store's client.
#[cfg(feature = "tls")]
pub(crate) type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// The connector type of the store's client.
#[cfg(not(feature = "tls"))]
pub(crate) type Connector = HttpConnector;

/// Whether this build can speak `https://`.
pub(crate) const HTTPS: bool = cfg!(feature = "tls");

/// What an `https://` URL is refused with in a build without TLS.
pub(crate) const NO_TLS: &str = "https needs the `tls` feature of the backends crate";

/// The TCP connector every request goes through.
fn tcp(config: &HttpConfig) -> HttpConnector {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(config.retry.request_timeout));
    connector.set_keepalive(Some(Duration::from_secs(30)));
    connector
}

/// The connector of a store opened with `config`. With TLS, fails if the configured extra
/// root certificate file cannot be read ([`ErrorKind::Io`](blobjobs_store_api::ErrorKind::Io)) or
/// holds no usable certificate ([`ErrorKind::InvalidInput`](blobjobs_store_api::ErrorKind::InvalidInput)).
/// Without TLS the extra roots are not used (and `https://` URLs are refused elsewhere).
#[cfg(not(feature = "tls"))]
pub(crate) fn connector(config: &HttpConfig) -> Result<Connector> {
    Ok(tcp(config))
}

/// The connector of a store opened with `config`. With TLS, fails if the configured extra
/// root certificate file cannot be read ([`ErrorKind::Io`](blobjobs_store_api::ErrorKind::Io)) or
/// holds no usable certificate ([`ErrorKind::InvalidInput`](blobjobs_store_api::ErrorKind::InvalidInput)).
/// Without TLS the extra roots are not used (and `https://` URLs are refused elsewhere).
#[cfg(feature = "tls")]
pub(crate) fn connector(config: &HttpConfig) -> Result<Connector> {
    use std::sync::Arc;

    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = &config.extra_root_pem {
        add_pem_roots(&mut roots, path)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| {
            blobjobs_store_api::Error::new(
                blobjobs_store_api::ErrorKind::InvalidInput,
                format!("cannot set up tls: {e}"),
            )
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = tcp(config);
    // The https connector checks the scheme; the tcp one must let https through.
    http.enforce_http(false);
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http))
}

/// Adds every certificate of the PEM file at `path` to `roots`.
#[cfg(feature = "tls")]
fn add_pem_roots(roots: &mut rustls::RootCertStore, path: &std::path::Path) -> Result<()> {
    use blobjobs_store_api::{Error, ErrorKind};
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::{self, PemObject as _};

    let shown = path.display();
    let read_error = |e: pem::Error| match e {
        pem::Error::Io(io) => Error::new(
            ErrorKind::Io,
            format!("cannot read the ca file {shown}: {io}"),
        ),
        other => Error::invalid(format!("the ca file {shown} is not valid pem: {other}")),
    };
    let mut added = 0usize;
    for cert in CertificateDer::pem_file_iter(path).map_err(read_error)? {
        let cert = cert.map_err(read_error)?;
        roots.add(cert).map_err(|e| {
            Error::invalid(format!(
                "the ca file {shown} holds a certificate that cannot be a root: {e}"
            ))
        })?;
        added += 1;
    }
    if added == 0 {
        return Err(Error::invalid(format!(
            "the ca file {shown} holds no certificate"
        )));
    }
    Ok(())
}

/// If `err` (or an error it wraps) is a TLS handshake failure that another attempt cannot
/// fix — the server's certificate is not trusted or not valid for the host, or the server
/// speaks no TLS version or cipher this client accepts — its description.
#[cfg(feature = "tls")]
pub(crate) fn rejection(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current = Some(err);
    // Bounded: error chains are short, but never trust one to end.
    for _ in 0..16 {
        let e = current?;
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return match tls {
                rustls::Error::InvalidCertificate(_)
                | rustls::Error::NoCertificatesPresented
                | rustls::Error::PeerIncompatible(_) => Some(tls.to_string()),
                _ => None,
            };
        }
        // `io::Error::source` skips the error it wraps, so look inside explicitly.
        current = match e.downcast_ref::<std::io::Error>() {
            Some(io) => match io.get_ref() {
                Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
                None => std::error::Error::source(io),
            },
            None => e.source(),
        };
    }
    None
}

/// Without TLS no handshake happens, so nothing is a TLS rejection.
#[cfg(not(feature = "tls"))]
pub(crate) fn rejection(_err: &(dyn std::error::Error + 'static)) -> Option<String> {
    None
}
