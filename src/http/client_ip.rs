//! The client address that rate limits and the audit log see: the TCP
//! peer, unless the peer is a trusted proxy, in which case the nearest
//! untrusted address of `X-Forwarded-For`.

use std::net::{IpAddr, Ipv4Addr};

use actix_web::HttpRequest;

pub fn client_addr(req: &HttpRequest, trusted: &[IpAddr]) -> IpAddr {
    let peer = req
        .peer_addr()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
    if !trusted.contains(&peer) {
        return peer;
    }
    let chain: Vec<IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map_while(|s| s.trim().parse().ok())
        .collect();
    chain
        .iter()
        .rev()
        .find(|ip| !trusted.contains(ip))
        .or_else(|| chain.first())
        .copied()
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn req(xff: Option<&str>) -> HttpRequest {
        let mut r = TestRequest::default().peer_addr("10.0.0.1:5000".parse().unwrap());
        if let Some(v) = xff {
            r = r.insert_header(("x-forwarded-for", v));
        }
        r.to_http_request()
    }

    #[test]
    fn untrusted_peers_cannot_choose_their_address() {
        assert_eq!(
            client_addr(&req(Some("1.2.3.4")), &[]),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn trusted_proxies_pass_the_nearest_untrusted_address() {
        let trusted: Vec<IpAddr> = vec!["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()];
        assert_eq!(
            client_addr(&req(Some("6.6.6.6, 1.2.3.4, 10.0.0.2")), &trusted),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_addr(&req(None), &trusted),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
    }
}
