import CCurl
import Foundation

/// Runs `curl_global_init` exactly once, before the first easy handle is made.
///
/// `curl_global_init` is not thread-safe (libcurl-thread(3)); a `static let` initialiser is run once,
/// atomically, by the Swift runtime.
enum CurlGlobal {
    static let initialized: Bool = {
        curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK
    }()
}

/// The head of an HTTP response: status, reason phrase and headers (names lower-cased).
public struct HTTPResponseHead: Sendable {
    public var status: Int
    public var headers: [String: String]
    /// The status line's reason phrase ("Bad Gateway"); empty when the server sent none (HTTP/2 never does).
    public var reason: String

    public init(status: Int, headers: [String: String], reason: String = "") {
        self.status = status
        self.headers = headers
        self.reason = reason
    }

    public subscript(header name: String) -> String? { headers[name.lowercased()] }
}

/// Why a transfer failed below HTTP.
public struct TransportError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case couldNotResolveHost
        case connectionRefused
        case timedOut
        case tls
        /// The connection broke while the response was being received.
        case interrupted
        case aborted
        case other
    }

    public var kind: Kind
    public var curlCode: Int
    public var message: String
    /// The host (never a URL: URLs may carry presigned credentials).
    public var host: String

    public var description: String { "\(message) (\(host), curl error \(curlCode))" }

    /// Whether the request certainly never reached the server, so even a non-idempotent request may be resent.
    public var requestNeverSent: Bool { kind == .connectionRefused || kind == .couldNotResolveHost }
}

/// A request refused before anything was sent: a header that could end its line early and start another
/// (`Idempotency-Key: x\r\nX-Injected: …`). Never retried.
public struct RequestRefused: Error, Sendable, CustomStringConvertible {
    /// Names the header, never its value (it may be a token).
    public var message: String
    public var description: String { message }
}

/// One HTTP request.
public struct HTTPRequest: Sendable {
    public enum Method: String, Sendable { case get = "GET", post = "POST", put = "PUT", delete = "DELETE" }
    public var method: Method
    public var url: String
    public var headers: [(String, String)]
    public var body: [UInt8]?

    public init(method: Method, url: String, headers: [(String, String)] = [], body: [UInt8]? = nil) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
    }

    /// Refuses a header no HTTP/1.1 line can carry as it is: a name that is not a token (RFC 9110: letters,
    /// digits and ``!#$%&'*+-.^_`|~``), a value with a control character other than tab (CR and LF end the line).
    /// Every request passes here before libcurl sees it, whatever built its headers.
    public func checkHeaders() throws(RequestRefused) {
        for (name, value) in headers {
            let token = !name.isEmpty && name.utf8.allSatisfy { b in
                (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
                    || "!#$%&'*+-.^_`|~".utf8.contains(b)
            }
            guard token else {
                throw RequestRefused(message: "refusing to send a header named \(name.debugDescription): a header name "
                    + "is letters, digits and !#$%&'*+-.^_`|~ only")
            }
            guard !value.utf8.contains(where: { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F }) else {
                throw RequestRefused(message: "refusing to send header \(name): its value holds a control character "
                    + "(CR, LF, NUL or another), which would end the header line; it must be built from checked parts")
            }
        }
    }
}

/// Transport options that apply to every request.
public struct TransportOptions: Sendable {
    /// Seconds allowed to establish a connection.
    public var connectTimeout: Double = 15
    /// Seconds allowed for a whole request (0 = no limit).
    public var requestTimeout: Double = 300
    /// A PEM bundle of CA certificates to trust instead of the system's.
    public var caBundlePath: String?
    /// Whether TLS peers are verified (always true outside tests that say otherwise).
    public var verifyTLS: Bool = true
    public var userAgent: String = "cdfsync/0.1"

    public init() {}
}

/// A blocking HTTP/1.1 transport over one libcurl easy handle, reused so connections stay alive.
///
/// - Important: not thread-safe. A handle may move between threads but must never be used by two at once
///   (libcurl-thread(3)); use one `CurlTransport` per thread. Proxies come from the usual environment
///   variables (`https_proxy`, `no_proxy`, ...), which libcurl reads itself.
public final class CurlTransport {
    private let handle: UnsafeMutableRawPointer
    public let options: TransportOptions

    public init(options: TransportOptions = TransportOptions()) {
        precondition(CurlGlobal.initialized, "curl_global_init failed")
        guard let h = curl_easy_init() else { preconditionFailure("curl_easy_init returned NULL (out of memory)") }
        handle = h
        self.options = options
    }

    deinit { curl_easy_cleanup(handle) }

    /// Performs `request`, streaming the body to `onData` as it arrives.
    ///
    /// `onHead` is called once the status line and headers are in, before the first body byte; it may throw
    /// to abort the transfer (for example to skip a body it does not want). Errors thrown by `onData` abort the
    /// transfer and are rethrown as they are.
    /// - Returns: the response head.
    /// - Throws: `TransportError` below HTTP, or whatever the callbacks threw.
    @discardableResult
    public func perform(
        _ request: HTTPRequest,
        onHead: (HTTPResponseHead) throws -> Void = { _ in },
        onData: (UnsafeRawBufferPointer) throws -> Void
    ) throws -> HTTPResponseHead {
        try withoutActuallyEscaping(onHead) { onHead in
            try withoutActuallyEscaping(onData) { onData in
                let box = TransferBox(onHead: onHead, onData: onData)
                return try perform(request, box: box)
            }
        }
    }

    /// Performs `request` and collects the whole body (for small control-plane responses only).
    public func performCollecting(_ request: HTTPRequest, limit: Int = 64 << 20, expectedBytes: Int = 0)
        throws -> (HTTPResponseHead, [UInt8])
    {
        var body: [UInt8] = []
        let head = try performCollecting(request, into: &body, limit: limit, expectedBytes: expectedBytes)
        return (head, body)
    }

    /// Performs `request` and collects the whole body into `body`, emptied first and keeping its capacity (a
    /// buffer reused from an earlier transfer is written without faulting in fresh pages).
    public func performCollecting(_ request: HTTPRequest, into body: inout [UInt8], limit: Int = 64 << 20,
                                  expectedBytes: Int = 0) throws -> HTTPResponseHead
    {
        body.removeAll(keepingCapacity: true)
        // Sized up front when the length is known, so a large body is not copied through doubling reallocations
        // (which also leave the allocator holding twice the body); with an eighth to spare, so that a buffer reused
        // for the next chunk, a few bytes longer, is not replaced by a fresh one.
        if expectedBytes > 0, body.capacity < expectedBytes {
            body.reserveCapacity(min(expectedBytes + expectedBytes / 8, limit, 256 << 20))
        }
        return try perform(request) { chunk in
            if body.count + chunk.count > limit {
                throw TransportError(
                    kind: .aborted, curlCode: 0, message: "response larger than \(limit) bytes", host: "")
            }
            body.append(contentsOf: chunk)
        }
    }

    /// Bytes curl reads from the socket at a time (`CURLOPT_BUFFERSIZE`).
    static let receiveBufferSize = 512 << 10

    private func perform(_ request: HTTPRequest, box: TransferBox) throws -> HTTPResponseHead {
        try request.checkHeaders()
        let h = handle
        curl_easy_reset(h)
        _ = ccurl_easy_setopt_long(h, CURLOPT_NOSIGNAL, 1)
        _ = ccurl_easy_setopt_long(h, CURLOPT_TCP_NODELAY, 1)
        _ = ccurl_easy_setopt_long(h, CURLOPT_TCP_KEEPALIVE, 1)
        // A 512 KiB receive buffer (curl's default is 16 KiB): an external-link body of tens of MB arrives in
        // ~32× fewer reads and write callbacks (download threads' CPU per 1 M-row sync 0.27–0.29 → 0.20–0.25 s).
        _ = ccurl_easy_setopt_long(h, CURLOPT_BUFFERSIZE, Self.receiveBufferSize)
        _ = ccurl_easy_setopt_long(h, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_1_1))
        _ = ccurl_easy_setopt_long(h, CURLOPT_CONNECTTIMEOUT_MS, Int(options.connectTimeout * 1000))
        _ = ccurl_easy_setopt_long(h, CURLOPT_TIMEOUT_MS, Int(options.requestTimeout * 1000))
        _ = ccurl_easy_setopt_long(h, CURLOPT_SSL_VERIFYPEER, options.verifyTLS ? 1 : 0)
        _ = ccurl_easy_setopt_long(h, CURLOPT_SSL_VERIFYHOST, options.verifyTLS ? 2 : 0)
        _ = ccurl_easy_setopt_long(h, CURLOPT_FOLLOWLOCATION, 0)
        _ = ccurl_easy_setopt_string(h, CURLOPT_USERAGENT, options.userAgent)
        if let ca = options.caBundlePath { _ = ccurl_easy_setopt_string(h, CURLOPT_CAINFO, ca) }
        _ = ccurl_easy_setopt_string(h, CURLOPT_URL, request.url)
        // Ask for gzip/deflate if the server offers it; libcurl decodes before the write callback.
        _ = ccurl_easy_setopt_string(h, CURLOPT_ACCEPT_ENCODING, "")

        switch request.method {
        case .get: _ = ccurl_easy_setopt_long(h, CURLOPT_HTTPGET, 1)
        case .post, .put:
            _ = ccurl_easy_setopt_long(h, CURLOPT_POST, 1)
            if request.method == .put { _ = ccurl_easy_setopt_string(h, CURLOPT_CUSTOMREQUEST, "PUT") }
            let body = request.body ?? []
            _ = ccurl_easy_setopt_off(h, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count))
            // COPYPOSTFIELDS copies, so the Swift array need not outlive this call.
            body.withUnsafeBufferPointer { p in
                _ = ccurl_easy_setopt_pointer(
                    h, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: p.baseAddress ?? UnsafePointer(bitPattern: 1)!))
            }
        case .delete:
            _ = ccurl_easy_setopt_string(h, CURLOPT_CUSTOMREQUEST, "DELETE")
        }

        var list: UnsafeMutablePointer<curl_slist>? = nil
        for (name, value) in request.headers { list = curl_slist_append(list, "\(name): \(value)") }
        // Without this, curl adds "Expect: 100-continue" to larger POSTs and waits a round trip.
        list = curl_slist_append(list, "Expect:")
        defer { curl_slist_free_all(list) }
        _ = ccurl_easy_setopt_slist(h, CURLOPT_HTTPHEADER, list)

        let context = Unmanaged.passUnretained(box).toOpaque()
        _ = ccurl_easy_setopt_data_callback(h, CURLOPT_WRITEFUNCTION, curlWriteCallback)
        _ = ccurl_easy_setopt_pointer(h, CURLOPT_WRITEDATA, context)
        _ = ccurl_easy_setopt_data_callback(h, CURLOPT_HEADERFUNCTION, curlHeaderCallback)
        _ = ccurl_easy_setopt_pointer(h, CURLOPT_HEADERDATA, context)

        let code = withExtendedLifetime(box) { curl_easy_perform(h) }
        if let error = box.error { throw error }
        guard code == CURLE_OK else { throw transportError(code, url: request.url) }
        var status = 0
        _ = ccurl_easy_getinfo_long(h, CURLINFO_RESPONSE_CODE, &status)
        return HTTPResponseHead(status: status, headers: box.headers, reason: box.reason)
    }

    private func transportError(_ code: CURLcode, url: String) -> TransportError {
        let host = URLComponents(string: url)?.host ?? "the server"
        let text = String(cString: curl_easy_strerror(code))
        let kind: TransportError.Kind
        switch code {
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY: kind = .couldNotResolveHost
        case CURLE_COULDNT_CONNECT: kind = .connectionRefused
        case CURLE_OPERATION_TIMEDOUT: kind = .timedOut
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER,
            CURLE_SSL_CACERT_BADFILE, CURLE_SSL_ISSUER_ERROR:
            kind = .tls
        case CURLE_RECV_ERROR, CURLE_PARTIAL_FILE, CURLE_GOT_NOTHING, CURLE_SEND_ERROR, CURLE_HTTP2,
            CURLE_HTTP2_STREAM, CURLE_BAD_CONTENT_ENCODING:
            kind = .interrupted
        case CURLE_ABORTED_BY_CALLBACK, CURLE_WRITE_ERROR: kind = .aborted
        default: kind = .other
        }
        return TransportError(kind: kind, curlCode: Int(code.rawValue), message: text, host: host)
    }
}

@available(*, unavailable)
extension CurlTransport: Sendable {}

/// What the C callbacks need: the caller's closures, the headers seen so far, and the first error thrown.
private final class TransferBox {
    let onHead: (HTTPResponseHead) throws -> Void
    let onData: (UnsafeRawBufferPointer) throws -> Void
    var headers: [String: String] = [:]
    var status = 0
    var reason = ""
    var headDelivered = false
    var error: (any Error)?

    init(onHead: @escaping (HTTPResponseHead) throws -> Void, onData: @escaping (UnsafeRawBufferPointer) throws -> Void) {
        self.onHead = onHead
        self.onData = onData
    }
}

private func curlHeaderCallback(_ ptr: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ ctx: UnsafeMutableRawPointer?) -> Int {
    let n = size * count
    guard let ptr, let ctx else { return n }
    let box = Unmanaged<TransferBox>.fromOpaque(ctx).takeUnretainedValue()
    let line = String(decoding: UnsafeRawBufferPointer(start: ptr, count: n), as: UTF8.self)
    if line.hasPrefix("HTTP/") {
        // A new response (e.g. after 100 Continue): start over.
        box.headers = [:]
        let parts = line.split(separator: " ", maxSplits: 2)
        if parts.count >= 2, let s = Int(parts[1]) { box.status = s }
        // Bounded: it ends up in error messages.
        box.reason = parts.count == 3 ? String(parts[2].trimmingCharacters(in: .whitespacesAndNewlines).prefix(80)) : ""
    } else if let colon = line.firstIndex(of: ":") {
        let name = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
        let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
        box.headers[name] = value
    }
    return n
}

private func curlWriteCallback(_ ptr: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ ctx: UnsafeMutableRawPointer?) -> Int {
    let n = size * count
    guard let ctx else { return 0 }
    let box = Unmanaged<TransferBox>.fromOpaque(ctx).takeUnretainedValue()
    do {
        if !box.headDelivered {
            box.headDelivered = true
            try box.onHead(HTTPResponseHead(status: box.status, headers: box.headers, reason: box.reason))
        }
        try box.onData(UnsafeRawBufferPointer(start: ptr, count: n))
        return n
    } catch {
        box.error = error
        return 0  // makes curl abort with CURLE_WRITE_ERROR
    }
}
