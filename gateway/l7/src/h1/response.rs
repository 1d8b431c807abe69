//! Which responses have a body (RFC 9112 §6.3 rules 1 and 2).

use super::Method;

/// What follows a response's head on the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseBody {
    /// No body, whatever Content-Length or Transfer-Encoding say: a response to HEAD, a 1xx
    /// other than 101 (an interim response: the final one follows), 204, 304.
    None,
    /// The connection becomes a tunnel: 101 Switching Protocols, or a 2xx answer to CONNECT.
    Tunnel,
    /// A body framed by the response's own fields (Content-Length, chunked, or until close).
    Framed,
}

/// Whether a response with `status` to a request with `method` has a body.
pub fn response_body(method: Method, status: u16) -> ResponseBody {
    match (method, status) {
        (_, 101) => ResponseBody::Tunnel,
        (Method::Connect, 200..=299) => ResponseBody::Tunnel,
        (Method::Head, _) | (_, 100..=199 | 204 | 304) => ResponseBody::None,
        _ => ResponseBody::Framed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_responses_without_a_body() {
        #[rustfmt::skip]
        let cases = [
            (Method::Get, 200, ResponseBody::Framed),
            (Method::Head, 200, ResponseBody::None),
            (Method::Head, 404, ResponseBody::None),
            (Method::Get, 100, ResponseBody::None),
            (Method::Post, 103, ResponseBody::None),
            (Method::Get, 204, ResponseBody::None),
            (Method::Get, 304, ResponseBody::None),
            (Method::Get, 205, ResponseBody::Framed),
            (Method::Get, 101, ResponseBody::Tunnel),
            (Method::Connect, 200, ResponseBody::Tunnel),
            (Method::Connect, 407, ResponseBody::Framed),
            (Method::Post, 500, ResponseBody::Framed),
        ];
        for (method, status, body) in cases {
            assert_eq!(response_body(method, status), body, "{method:?} {status}");
        }
    }
}
