import CDFSyncCore
import Foundation

/// Downloads the chunks of an EXTERNAL_LINKS result with up to K transfers in flight and hands them to the
/// consumer in chunk order.
///
/// - Memory is bounded by K: a worker claims chunk `i` only while `i < consumed + K`, so at most K bodies are
///   downloaded but not yet consumed. A consumed body comes back (``recycle(_:)``) and the next download is
///   written into it: fresh tens-of-megabyte buffers cost a page fault per 4 KB (~115,000 per million rows).
/// - Presigned URLs get the link's `http_headers` and never the workspace `Authorization` header, and are never
///   logged or put in errors (they carry credentials).
/// - A link within `refreshMargin` seconds of its `expiration`, or answered 403 by storage, is replaced by a
///   fresh one from `GET .../result/chunks/{i}`.
///
/// Thread-safety: all mutable state is guarded by `condition`; each worker thread owns its own `WorkspaceAPI`
/// (and so its own libcurl handle), as libcurl requires. Hence `@unchecked Sendable`.
final class ExternalLinkFetcher: @unchecked Sendable {
    private let condition = NSCondition()
    private var links: [Int: ExternalLink] = [:]
    private var ready: [Int: Result<[UInt8], any Error>] = [:]
    /// Consumed bodies, emptied, for the next downloads; at most `inFlight`.
    private var spares: [[UInt8]] = []
    private var nextToClaim = 0
    private var consumed = 0
    private var stopped = false
    private var threadsRunning = 0

    let total: Int
    let inFlight: Int
    let statementID: String
    let settings: ConnectionSettings
    let tokens: any TokenProvider
    let retryPolicy: RetryPolicy
    let refreshMargin: Double

    init(statementID: String, totalChunks: Int, initialLinks: [ExternalLink], inFlight: Int,
         settings: ConnectionSettings, tokens: any TokenProvider, retryPolicy: RetryPolicy, refreshMargin: Double = 60) {
        self.statementID = statementID
        self.total = totalChunks
        self.inFlight = max(1, inFlight)
        self.settings = settings
        self.tokens = tokens
        self.retryPolicy = retryPolicy
        self.refreshMargin = refreshMargin
        for l in initialLinks { links[l.chunkIndex] = l }
    }

    func start() {
        let n = min(inFlight, total)
        condition.lock()
        threadsRunning = n
        condition.unlock()
        for w in 0..<n {
            let t = Thread { [self] in work() }
            t.name = "cdfsync-fetch-\(w)"
            t.start()
        }
    }

    /// Blocks until chunk `index` (the next in order) is downloaded and returns its body.
    func take(_ index: Int) throws -> [UInt8] {
        condition.lock()
        defer { condition.unlock() }
        precondition(index == consumed, "chunks must be taken in order")
        while ready[index] == nil && !stopped { condition.wait() }
        guard let result = ready.removeValue(forKey: index) else {
            throw DatabricksError(.statementCanceled, "download of statement \(statementID) was stopped",
                remedy: "Run the sync again.", statementID: statementID)
        }
        consumed += 1
        condition.broadcast()
        return try result.get()
    }

    /// Gives back a body `take` returned, once decoded, for a later download to reuse.
    func recycle(_ body: consuming [UInt8]) {
        condition.lock()
        defer { condition.unlock() }
        if spares.count < inFlight { spares.append(body) }
    }

    /// Stops the workers (after the current transfers) and waits for them to exit.
    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        while threadsRunning > 0 { condition.wait() }
        condition.unlock()
    }

    private func work() {
        let api = WorkspaceAPI(settings: settings, tokens: tokens)
        api.retryPolicy = retryPolicy
        defer {
            condition.lock()
            threadsRunning -= 1
            condition.broadcast()
            condition.unlock()
        }
        while true {
            condition.lock()
            while !stopped && nextToClaim < total && nextToClaim >= consumed + inFlight { condition.wait() }
            if stopped || nextToClaim >= total {
                condition.unlock()
                return
            }
            let index = nextToClaim
            nextToClaim += 1
            let known = links[index]
            var body = spares.popLast() ?? []
            condition.unlock()

            let result: Result<[UInt8], any Error>
            do {
                try download(index, link: known, api: api, into: &body)
                result = .success(body)
            } catch {
                result = .failure(error)
            }
            condition.lock()
            ready[index] = result
            if case .failure = result { stopped = true }
            condition.broadcast()
            condition.unlock()
        }
    }

    private func freshLink(_ index: Int, api: WorkspaceAPI) throws -> ExternalLink {
        let data = try api.getJSON(ResultData.self, path: "/api/2.0/sql/statements/\(statementID)/result/chunks/\(index)",
            context: "fetching the link of chunk \(index) of statement \(statementID)")
        condition.lock()
        for l in data.externalLinks ?? [] { links[l.chunkIndex] = l }
        let link = links[index]
        condition.unlock()
        guard let link, link.chunkIndex == index else {
            throw DatabricksError(.invalidResponse, "chunk \(index) of statement \(statementID) came without an external link",
                remedy: "Unexpected server response; run the sync again.", statementID: statementID)
        }
        return link
    }

    private func download(_ index: Int, link known: ExternalLink?, api: WorkspaceAPI, into body: inout [UInt8]) throws {
        var link = known
        var refreshes = 0
        var attempt = 0
        let started = Date()
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let plain = ISO8601DateFormatter()
        while true {
            if let l = link, let exp = formatter.date(from: l.expiration) ?? plain.date(from: l.expiration),
                exp.timeIntervalSinceNow < refreshMargin
            {
                link = nil
            }
            let current = try link ?? freshLink(index, api: api)
            link = current
            var headers: [(String, String)] = []
            for (k, v) in current.httpHeaders ?? [:] where k.lowercased() != "authorization" { headers.append((k, v)) }
            let host = URLComponents(string: current.externalLink)?.host ?? "storage"
            let failure: DatabricksError
            let retryable: Bool
            do {
                let head = try api.transport.performCollecting(
                    HTTPRequest(method: .get, url: current.externalLink, headers: headers), into: &body, limit: 1 << 31,
                    expectedBytes: Int(clamping: current.byteCount ?? 0))
                switch head.status {
                case 200:
                    return
                case 403 where refreshes < 3:
                    // Expired or revoked presigned URL: get a fresh one through the chunk endpoint.
                    refreshes += 1
                    link = nil
                    continue
                default:
                    failure = DatabricksError(
                        head.status == 403 ? .permissionDenied : .serverError,
                        "downloading chunk \(index) of statement \(statementID) from \(host) failed with HTTP \(head.status)",
                        remedy: head.status == 403
                            ? "Cloud storage refused the presigned link; check that this network may reach the workspace's storage (egress to S3/ADLS/GCS)."
                            : "Cloud storage answered with an error; cdfsync retries. Check storage reachability if it persists.",
                        httpStatus: head.status, statementID: statementID,
                        retryAfter: head[header: "retry-after"].flatMap(Double.init))
                    retryable = head.status == 429 || head.status >= 500
                }
            } catch let e as TransportError {
                failure = DatabricksError(.hostUnreachable,
                    "downloading chunk \(index) of statement \(statementID) from \(e.host) failed (\(e.message))",
                    remedy: "Check that this network can reach the workspace's cloud storage; cdfsync retried the download.",
                    statementID: statementID)
                retryable = e.kind != .tls
            }
            attempt += 1
            guard retryable, attempt < retryPolicy.maxAttempts, Date().timeIntervalSince(started) < retryPolicy.budget else {
                throw failure
            }
            Thread.sleep(forTimeInterval: retryPolicy.delay(attempt: attempt, retryAfter: failure.retryAfter))
        }
    }
}
