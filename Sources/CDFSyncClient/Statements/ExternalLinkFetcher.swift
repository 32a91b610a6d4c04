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
///   fresh one from the chunk's link request: the `next_chunk_internal_link` the previous chunk's link gave, used
///   as the server wrote it (query string included); `GET .../result/chunks/{i}` only where the server gave none.
/// - The first download that fails stops the others, and is the error the consumer sees.
///
/// Thread-safety: all mutable state is guarded by `condition`; each worker thread owns its own `WorkspaceAPI`
/// (and so its own libcurl handle), as libcurl requires. Hence `@unchecked Sendable`.
final class ExternalLinkFetcher: @unchecked Sendable {
    private let condition = NSCondition()
    private var links: [Int: ExternalLink] = [:]
    /// Chunk index → the `next_chunk_internal_link` the previous chunk's link gave for it.
    private var internalLinks: [Int: String] = [:]
    private var ready: [Int: Result<[UInt8], any Error>] = [:]
    /// Consumed bodies, emptied, for the next downloads; at most `inFlight`.
    private var spares: [[UInt8]] = []
    private var nextToClaim = 0
    private var consumed = 0
    private var stopped = false
    /// The first download that failed: what `take` reports, whichever chunk the consumer is waiting for (the
    /// failure stops every worker, so a later chunk's error must not turn into "stopped" for an earlier one).
    private var firstFailure: (any Error)?
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
        for l in initialLinks { record(l) }
    }

    /// Keeps a link, and the link request it names for the next chunk. Call with `condition` locked (or in `init`).
    private func record(_ link: ExternalLink) {
        links[link.chunkIndex] = link
        let next = link.nextChunkIndex ?? (link.chunkIndex < Int.max ? link.chunkIndex + 1 : nil)
        if let next, let path = link.nextChunkInternalLink { internalLinks[next] = path }
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
            if let firstFailure { throw firstFailure }
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
            if case .failure(let error) = result {
                if firstFailure == nil { firstFailure = error }
                stopped = true
            }
            condition.broadcast()
            condition.unlock()
        }
    }

    private func freshLink(_ index: Int, api: WorkspaceAPI) throws -> ExternalLink {
        let data = try api.getJSON(ResultData.self, path: try linkRequestPath(index),
            context: "fetching the link of chunk \(index) of statement \(statementID)")
        condition.lock()
        for l in data.externalLinks ?? [] { record(l) }
        let link = links[index]
        // Workers waiting for this chunk's link to learn the next chunk's link request.
        condition.broadcast()
        condition.unlock()
        guard let link, link.chunkIndex == index else {
            throw DatabricksError(.invalidResponse, "chunk \(index) of statement \(statementID) came without an external link",
                remedy: "Unexpected server response; run the sync again.", statementID: statementID)
        }
        return link
    }

    /// The path that asks for chunk `index`'s link: the `next_chunk_internal_link` the previous chunk's link gave,
    /// as the server wrote it (the path may carry a query string the server needs), else the documented path.
    ///
    /// The previous chunk was claimed first, so its worker already holds its link or is fetching it; waiting for it
    /// is short (a small JSON request, not a download) and ends when that worker fails too (`stopped`).
    private func linkRequestPath(_ index: Int) throws -> String {
        condition.lock()
        while internalLinks[index] == nil && index > 0 && links[index - 1] == nil && !stopped { condition.wait() }
        let given = internalLinks[index]
        let wasStopped = stopped && given == nil && index > 0 && links[index - 1] == nil
        condition.unlock()
        if wasStopped {
            throw DatabricksError(.statementCanceled, "download of statement \(statementID) was stopped",
                remedy: "Run the sync again.", statementID: statementID)
        }
        guard let given else { return "/api/2.0/sql/statements/\(statementID)/result/chunks/\(index)" }
        // Joined to the workspace URL, with the workspace credential: it must stay a path on that host.
        guard given.hasPrefix("/"), !given.hasPrefix("//"), given.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw DatabricksError(.invalidResponse,
                "the link to chunk \(index) of statement \(statementID) is not a path on the workspace",
                remedy: "The warehouse sent a malformed chunk link; nothing was checkpointed. Run the sync again.",
                statementID: statementID)
        }
        return given
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
                case 401 where refreshes < 3, 403 where refreshes < 3:
                    // Expired or revoked presigned URL: get a fresh one through the chunk's link request.
                    refreshes += 1
                    link = nil
                    continue
                default:
                    failure = Self.storageFailure(status: head.status, chunk: index, statementID: statementID,
                        host: host, retryAfter: head[header: "retry-after"].flatMap(Double.init))
                    retryable = head.status == 429 || head.status >= 500
                }
            } catch let e as TransportError {
                failure = DatabricksError(.hostUnreachable,
                    "downloading chunk \(index) of statement \(statementID) from \(e.host) failed (\(e.message))",
                    remedy: "Check that this network can reach the workspace's cloud storage (egress to S3/ADLS/GCS).",
                    statementID: statementID)
                retryable = e.kind != .tls
            }
            attempt += 1
            guard retryable, attempt < retryPolicy.maxAttempts, Date().timeIntervalSince(started) < retryPolicy.budget else {
                throw attempt > 1 ? failure.afterAttempts(attempt, seconds: Date().timeIntervalSince(started)) : failure
            }
            Thread.sleep(forTimeInterval: retryPolicy.delay(attempt: attempt, retryAfter: failure.retryAfter))
        }
    }

    /// What storage's answer to a chunk download means: 401/403 (once fresh links did not help) is a refusal of
    /// the presigned link, 404/410 a result file that is gone, 429/5xx storage in trouble (retried first).
    static func storageFailure(status: Int, chunk: Int, statementID: String, host: String, retryAfter: Double?)
        -> DatabricksError
    {
        let what = "downloading chunk \(chunk) of statement \(statementID) from \(host) failed with HTTP \(status)"
        switch status {
        case 401, 403:
            return DatabricksError(.permissionDenied, what,
                remedy: "Cloud storage refused the presigned link, also a fresh one; check that this network may reach "
                    + "the workspace's storage (egress to S3/ADLS/GCS) and that no proxy rewrites the request.",
                httpStatus: status, statementID: statementID)
        case 404, 410:
            return DatabricksError(.invalidResponse, what + " (the result file is gone)",
                remedy: "The statement's result expired or was closed before it was read; nothing was checkpointed. "
                    + "Run the sync again.",
                httpStatus: status, statementID: statementID)
        case 429, 500...:
            return DatabricksError(status == 429 ? .rateLimited : .serverError, what,
                remedy: "Cloud storage kept failing; check the cloud provider's status and storage reachability, then "
                    + "run the sync again (it resumes from the last checkpoint).",
                httpStatus: status, statementID: statementID, retryAfter: retryAfter)
        default:
            return DatabricksError(.invalidResponse, what,
                remedy: "Cloud storage rejected the download; check that no proxy alters requests to the workspace's "
                    + "storage, then run the sync again.",
                httpStatus: status, statementID: statementID)
        }
    }
}
