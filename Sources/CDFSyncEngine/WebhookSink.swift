import CDFSyncClient
import CDFSyncCore
import CDFSyncStorage
import Foundation

/// Delivers a pipeline's changes to a webhook: POSTs batches of NDJSON lines (as a JSON array) with an
/// `Idempotency-Key`, retrying with backoff.
///
/// The delivered NDJSON segments are the durable log; the webhook follows them with its own cursor (the last
/// outbox sequence it acknowledged), stored in LMDB. Batches are cut deterministically from the cursor, so a
/// batch retried after a crash carries the same key and the same lines: a receiver that honours the key sees
/// every change exactly once.
public struct WebhookSink: Sendable {
    public var url: String
    public var batchSize: Int
    public var token: Secret?
    public var retry = RetryPolicy()
    public var transport = TransportOptions()
    /// Called before a batch is sent again after a failed attempt (host, the attempt that failed): counted by
    /// `cdfsync serve`'s metrics.
    public var onRetry: @Sendable (String, Int) -> Void = { _, _ in }

    public init(url: String, batchSize: Int = 500, token: Secret? = nil) {
        self.url = url
        self.batchSize = max(1, batchSize)
        self.token = token
    }

    /// The cursor key in the store for this sink of `pipeline`.
    func cursorKey(_ pipeline: String) -> String {
        var h = StableHash()
        h.combine(Array(url.utf8))
        return Self.cursorKey(pipeline: pipeline, urlHash: h.value)
    }

    /// `webhook/<pipeline>/<hash of the URL in hex>`: a checkpoint name, the longest key the store builds from a
    /// pipeline's name (``PipelineLoader/maxNameBytes``).
    static func cursorKey(pipeline: String, urlHash: UInt64) -> String {
        "webhook/\(pipeline)/\(String(urlHash, radix: 16))"
    }

    /// The URL as libcurl will use it, refused unless https (or http to loopback) without user info: the bearer
    /// token and every change go there.
    static func checkedURL(_ url: String) throws -> ParsedURL {
        do {
            let parsed = try ParsedURL(url)
            try parsed.requireSecure()
            return parsed
        } catch {
            throw SyncError("sinks: the webhook URL is refused: \(error.message)",
                remedy: "Give an https:// URL without user info (http only to 127.0.0.1, ::1 or localhost).")
        }
    }

    /// Sends every delivered change after the cursor. Returns the number of changes sent.
    ///
    /// - Throws: before sending anything, when the URL is not https (or http to loopback) or carries user info,
    ///   or `pipeline` is not a pipeline name (it starts each batch's `Idempotency-Key`).
    public func deliver(store: PanelStore, pipeline: String, segmentsDirectory: String) throws -> Int {
        let host = try Self.checkedURL(url).host
        if let problem = Pipeline.nameProblem(pipeline, maxBytes: .max) {
            throw SyncError("webhook batches of pipeline \(problem)",
                remedy: "Rename the pipeline (its name starts the Idempotency-Key header).")
        }
        let key = cursorKey(pipeline)
        var cursor = UInt64(max(0, try store.checkpoint(pipeline: key)?.tableVersion ?? 0))
        // The segments delivered into this pipeline's directory (another pipeline of the store has its own).
        let here = PanelStore.absolute(segmentsDirectory)
        let segments = try store.deliveredSegments()
            .filter { $0.lastSeq > cursor && ($0.directory == nil || $0.directory == here) }
            .sorted { $0.firstSeq < $1.firstSeq }
        let transport = CurlTransport(options: transport)
        var sent = 0
        var batch: [[UInt8]] = []
        var batchFirst: UInt64 = 0
        var batchLast: UInt64 = 0
        func post() throws {
            guard !batch.isEmpty else { return }
            var body: [UInt8] = [UInt8(ascii: "[")]
            for (i, line) in batch.enumerated() {
                if i > 0 { body.append(UInt8(ascii: ",")) }
                body.append(contentsOf: line)
            }
            body.append(UInt8(ascii: "]"))
            let idempotencyKey = "\(pipeline)-\(batchFirst)-\(batchLast)"
            try send(body, key: idempotencyKey, host: host, transport: transport)
            sent += batch.count
            cursor = batchLast
            try store.setCheckpoint(PanelStore.Checkpoint(tableVersion: Int64(cursor)), pipeline: key)
            batch.removeAll(keepingCapacity: true)
        }
        for segment in segments {
            // The name comes from the store; it must still name a file directly inside the directory.
            guard let path = FilePaths.child(segmentsDirectory, segment.file) else {
                throw SyncError(
                    "the store records a segment named \(segment.file.debugDescription), which is not a file name",
                    remedy: "The state store is damaged; resync into a new state directory.")
            }
            guard FileManager.default.fileExists(atPath: path) else {
                throw SyncError("segment \(segment.file) is missing from \(segmentsDirectory), so the webhook cannot be fed past sequence \(cursor)",
                    remedy: "Restore the segment file, or keep segments until every sink has consumed them.")
            }
            var seq = segment.firstSeq
            try ZstdFileReader(path: path).forEachLine { line in
                defer { seq += 1 }
                guard seq > cursor, !line.isEmpty else { return }
                // Batches are cut at multiples of batchSize, so a retry after a crash re-sends the same batch. The
                // sequences of a pipeline that shares its store skip the other pipeline's ranges: a batch also ends
                // where the next line is past the boundary of its block (else it could outgrow batchSize).
                let size = UInt64(batchSize)
                if !batch.isEmpty, (seq - 1) / size != (batchFirst - 1) / size { try post() }
                if batch.isEmpty { batchFirst = seq }
                batch.append(Array(line))
                batchLast = seq
                if seq % UInt64(batchSize) == 0 { try post() }
            }
        }
        try post()
        return sent
    }

    func send(_ body: [UInt8], key: String, host: String, transport: CurlTransport) throws {
        var headers = [("Content-Type", "application/json"), ("Idempotency-Key", key)]
        if let token { headers.append(("Authorization", "Bearer \(token.reveal())")) }
        let started = Date()
        var attempt = 0
        while true {
            attempt += 1
            var status = 0
            var retryAfter: Double?
            var failure = ""
            do {
                let (head, _) = try transport.performCollecting(HTTPRequest(method: .post, url: url, headers: headers, body: body),
                    limit: 1 << 20)
                status = head.status
                if (200..<300).contains(status) { return }
                retryAfter = head[header: "retry-after"].flatMap(Double.init)
                failure = "HTTP \(status)"
                if status != 429 && status < 500 {
                    throw SyncError("webhook \(host) rejected batch \(key) with HTTP \(status)",
                        remedy: "Check the webhook URL and its credentials (sinks[].token_env); the batch will be sent again on the next run.")
                }
            } catch let e as TransportError {
                failure = e.message
            }
            guard attempt < retry.maxAttempts, Date().timeIntervalSince(started) < retry.budget else {
                throw SyncError("webhook \(host) did not accept batch \(key) after \(attempt) attempts (\(failure))",
                    remedy: "The webhook is down or overloaded; the batch will be sent again (same Idempotency-Key) on the next run.")
            }
            onRetry(host, attempt)
            Thread.sleep(forTimeInterval: retry.delay(attempt: attempt, retryAfter: retryAfter))
        }
    }
}
