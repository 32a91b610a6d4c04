import CDFSyncCore
import Foundation
import Logging

/// Executes statements over the Statement Execution API 2.0 and streams their JSON_ARRAY results.
///
/// Submits with `wait_timeout`, polls with backoff against a wall-clock deadline (cancelling the statement
/// when it passes or when `isCancelled` says so), follows every chunk, and checks the row sum against
/// `total_row_count`. Bytes flow from libcurl straight into the streaming decoder; no result is held whole.
///
/// - Important: not thread-safe; use one client per thread.
public final class StatementClient {
    public let settings: ConnectionSettings
    /// Seconds a statement may take from submission to its last chunk.
    public var statementDeadline: Double = 3600
    /// Seconds the POST waits on the server (`wait_timeout`: 0 or 5–50).
    public var waitTimeout = 10
    /// Where the client logs: a warehouse starting or a statement queued (notice), retries (warning), statements
    /// (debug), requests and chunks (trace). Never a token, a secret, a header or a presigned URL's query.
    public var logger = Logger(label: "cdfsync.client") {
        didSet { api.logger = logger }
    }
    /// Polled between requests; when it returns true the statement is cancelled and `statementCanceled` thrown.
    public var isCancelled: () -> Bool = { false }

    let api: WorkspaceAPI
    var tokens: any TokenProvider { api.tokens }

    public init(settings: ConnectionSettings, tokens: (any TokenProvider)? = nil) {
        self.settings = settings
        self.api = WorkspaceAPI(settings: settings, tokens: tokens ?? WorkspaceAPI.defaultTokens(for: settings))
        api.logger = logger
    }

    public var retryPolicy: RetryPolicy {
        get { api.retryPolicy }
        set { api.retryPolicy = newValue }
    }

    // MARK: - Executing

    /// Chunks downloaded in parallel for EXTERNAL_LINKS results.
    public var externalLinksInFlight = 2

    /// Runs `statement` and streams its rows to `sink`.
    ///
    /// An INLINE statement that fails on the 25 MiB inline cap is run again with EXTERNAL_LINKS.
    /// - Throws: `DatabricksError` (categorised, with a remedy); errors thrown by the sink pass through.
    @discardableResult
    public func execute(_ statement: Statement, sink: any ResultSink) throws -> StatementOutcome {
        do {
            return try executeOnce(statement, sink: sink)
        } catch let e as DatabricksError where statement.disposition == .inline && e.isInlineLimitExceeded {
            logger.notice("result exceeds the inline limit; reading it through external links")
            var again = statement
            again.disposition = .externalLinks
            return try executeOnce(again, sink: sink)
        }
    }

    private func executeOnce(_ statement: Statement, sink: any ResultSink) throws -> StatementOutcome {
        try Self.checkReadOnly(statement.sql)
        let started = Date()
        let deadline = started.addingTimeInterval(statementDeadline)
        var bytes = 0
        let response = try submitAndWait(statement, sink: sink, deadline: deadline, bytes: &bytes)
        let statementID = response.statementID
        guard let manifest = response.manifest else {
            throw DatabricksError(.invalidResponse, "statement \(statementID) succeeded without a manifest",
                remedy: "Unexpected server response; report it.", statementID: statementID)
        }
        if let what = manifest.inconsistency {
            throw Self.protocolError("the manifest of statement \(statementID) does not hold together: \(what)",
                statementID: statementID)
        }
        if manifest.truncated == true {
            throw DatabricksError(.invalidResponse, "statement \(statementID) result was truncated by the server",
                remedy: "The result exceeded a size limit; read a smaller range. Nothing was checkpointed.",
                statementID: statementID)
        }
        try sink.manifestReady(manifest, statementID: statementID)
        let (rows, chunks): (Int, Int)
        if let links = response.result?.externalLinks {
            (rows, chunks) = try readExternal(statementID: statementID, manifest: manifest, initialLinks: links,
                sink: sink, bytes: &bytes, deadline: deadline)
        } else {
            let columns = manifest.schema.columnCount
            (rows, chunks) = try readInline(statementID: statementID, first: response.result,
                totalChunks: manifest.totalChunkCount, expectedColumns: columns > 0 ? columns : nil, sink: sink,
                bytes: &bytes)
        }
        logger.debug("statement \(statementID) read", metadata: [
            "statement_id": "\(statementID)", "rows": "\(rows)", "chunks": "\(chunks)", "bytes": "\(bytes)",
            "disposition": "\(response.result?.externalLinks == nil ? "INLINE" : "EXTERNAL_LINKS")",
        ])
        if manifest.totalRowCount != Int64(rows) {
            throw DatabricksError(.invalidResponse,
                "statement \(statementID) delivered \(rows) rows but its manifest says \(manifest.totalRowCount)",
                remedy: "Rows were lost in transfer; nothing was checkpointed. Run the sync again.", statementID: statementID)
        }
        return StatementOutcome(
            statementID: statementID, manifest: manifest, rowCount: rows, bytesReceived: bytes, chunkCount: chunks,
            seconds: Date().timeIntervalSince(started))
    }

    /// POSTs the statement and polls until it is terminal; returns the SUCCEEDED response.
    private func submitAndWait(_ statement: Statement, sink: any ResultSink, deadline: Date, bytes: inout Int) throws
        -> StatementResponse
    {
        let body = statement.requestBody(
            warehouseID: settings.warehouseID, catalog: settings.catalog, schema: settings.schema, waitTimeout: waitTimeout)
        var response = try exchange(
            .post, path: "/api/2.0/sql/statements", body: body, rule: .submit,
            context: "submitting a statement to warehouse \(settings.warehouseID)", sink: sink, bytes: &bytes)
        let statementID = response.statementID
        guard !statementID.isEmpty else {
            throw DatabricksError(.invalidResponse, "the statement response has no statement_id",
                remedy: "The server is not speaking the Statement Execution API; check the host.")
        }
        logger.debug("statement \(statementID) submitted", metadata: [
            "statement_id": "\(statementID)", "disposition": "\(statement.disposition.rawValue)",
            "state": "\(response.status?.state.rawValue ?? "?")",
        ])
        logger.trace("statement \(statementID) SQL: \(statement.sql)", metadata: ["statement_id": "\(statementID)"])
        var attempt = 0
        var pendingSince: Date?
        var waiting = PendingReason.unknown
        var reasonCheckedAt = Date.distantPast
        while let state = response.status?.state, state == .pending || state == .running {
            if isCancelled() {
                cancel(statementID: statementID)
                throw DatabricksError(.statementCanceled, "statement \(statementID) was cancelled on request",
                    remedy: "Run the sync again; it resumes from the last checkpoint.", statementID: statementID)
            }
            if Date() >= deadline {
                cancel(statementID: statementID)
                throw DatabricksError(.timedOut, "statement \(statementID) did not finish within \(Int(statementDeadline)) s",
                    remedy: "The warehouse is overloaded or the range is large; it was cancelled. Raise the deadline or use a larger warehouse.",
                    statementID: statementID)
            }
            if state == .pending {
                let since = pendingSince ?? Date()
                pendingSince = since
                // PENDING is a warehouse starting, or a statement queued on a running one: the warehouse says which
                // (asked again now and then: a starting warehouse comes up, a running one may stop).
                if Date().timeIntervalSince(reasonCheckedAt) >= 10 {
                    waiting = pendingReason()
                    reasonCheckedAt = Date()
                }
                let seconds = Int(Date().timeIntervalSince(since))
                switch waiting {
                case .warehouseStarting: logger.notice("warehouse starting (\(seconds)s)", metadata: ["statement_id": "\(statementID)"])
                case .queued: logger.notice("statement queued (\(seconds)s)", metadata: ["statement_id": "\(statementID)"])
                case .unknown: logger.notice("statement pending (\(seconds)s)", metadata: ["statement_id": "\(statementID)"])
                }
            } else {
                pendingSince = nil
            }
            attempt += 1
            Thread.sleep(forTimeInterval: min(2.0, 0.05 * pow(1.6, Double(min(attempt, 12)))))
            response = try exchange(
                .get, path: "/api/2.0/sql/statements/\(statementID)", body: nil, rule: .idempotent,
                context: "polling statement \(statementID)", sink: sink, bytes: &bytes)
        }
        let state = response.status?.state ?? .failed
        switch state {
        case .succeeded:
            return response
        case .closed where response.manifest != nil && response.result != nil:
            return response
        case .failed:
            let err = response.status?.error
            throw ErrorClassification.failedStatement(
                message: err?.message ?? "statement failed without a message", sqlState: response.status?.sqlState,
                statementID: statementID)
        case .canceled:
            throw DatabricksError(.statementCanceled, "statement \(statementID) was cancelled on the warehouse",
                remedy: "Someone or a warehouse timeout cancelled it; run the sync again.", statementID: statementID)
        default:
            throw DatabricksError(.invalidResponse, "statement \(statementID) ended \(state.rawValue) without a result",
                remedy: "The result expired or was closed before it was read; run the sync again.", statementID: statementID)
        }
    }

    enum PendingReason { case warehouseStarting, queued, unknown }

    /// Why a statement is PENDING: its warehouse is not RUNNING (starting), or it is and the statement waits its turn.
    /// One request, not retried; unknown when the warehouse cannot be read (e.g. no permission to view it).
    private func pendingReason() -> PendingReason {
        struct Warehouse: Decodable { var state: String? }
        let saved = api.retryPolicy
        api.retryPolicy.maxAttempts = 1
        defer { api.retryPolicy = saved }
        guard let w = try? api.getJSON(Warehouse.self, path: "/api/2.0/sql/warehouses/\(settings.warehouseID)",
            context: "reading the state of warehouse \(settings.warehouseID)"), let state = w.state
        else { return .unknown }
        return state.uppercased() == "RUNNING" ? .queued : .warehouseStarting
    }

    /// Chunk 0 came with the response (its rows already streamed); follows `next_chunk_internal_link`.
    private func readInline(
        statementID: String, first: ResultData?, totalChunks: Int, expectedColumns: Int?, sink: any ResultSink,
        bytes: inout Int
    ) throws -> (rows: Int, chunks: Int) {
        var rows = 0
        var chunks = 0
        var result = first
        var chunkIndex = 0
        if let r = result, r.rowCount != nil || r.chunkIndex != nil {
            guard (r.chunkIndex ?? 0) == 0 else {
                throw Self.protocolError("statement \(statementID) answered with chunk \(r.chunkIndex!) first, not chunk 0",
                    statementID: statementID)
            }
            let n = Int(r.rowCount ?? 0)
            rows += n
            chunks += 1
            try sink.chunkCompleted(index: chunkIndex, rowCount: n)
        }
        // The chain must name each chunk once, in order, and end at the manifest's last one: a link back (a loop), a
        // skipped chunk or a chain longer than the manifest stops the run. So the loop runs at most `totalChunks`
        // times, whatever the links say.
        while let next = result?.nextChunkInternalLink
            ?? result?.nextChunkIndex.map({ "/api/2.0/sql/statements/\(statementID)/result/chunks/\($0)" })
        {
            if isCancelled() {
                throw DatabricksError(.statementCanceled, "sync cancelled while reading statement \(statementID)",
                    remedy: "Run the sync again; it resumes from the last checkpoint.", statementID: statementID)
            }
            let expected = chunkIndex + 1
            let named = result?.nextChunkIndex ?? Self.chunkIndex(inLink: next, statementID: statementID)
            guard named == expected else {
                throw Self.protocolError("chunk \(chunkIndex) of statement \(statementID) links to "
                    + (named.map { "chunk \($0)" } ?? "'\(Self.pathOnly(next))'") + ", not chunk \(expected)",
                    statementID: statementID)
            }
            if let link = result?.nextChunkInternalLink, let indexInLink = Self.chunkIndex(inLink: link, statementID: statementID),
                indexInLink != expected
            {
                throw Self.protocolError("chunk \(chunkIndex) of statement \(statementID) names chunk \(expected) but links to "
                    + "chunk \(indexInLink)", statementID: statementID)
            }
            guard expected < totalChunks else {
                throw Self.protocolError("chunk \(chunkIndex) of statement \(statementID) links to chunk \(expected), but "
                    + "the manifest has \(totalChunks) chunk(s)", statementID: statementID)
            }
            chunkIndex = expected
            let chunk = try fetchChunk(path: next, context: "reading chunk \(chunkIndex) of statement \(statementID)",
                expectedColumns: expectedColumns, sink: sink, bytes: &bytes)
            if let answered = chunk.chunkIndex, answered != chunkIndex {
                throw Self.protocolError("asked for chunk \(chunkIndex) of statement \(statementID), got chunk \(answered)",
                    statementID: statementID)
            }
            let n = Int(chunk.rowCount ?? 0)
            rows += n
            chunks += 1
            try sink.chunkCompleted(index: chunkIndex, rowCount: n)
            result = chunk
        }
        if chunks < totalChunks {
            throw Self.protocolError("the chunk chain of statement \(statementID) ended after \(chunks) of the manifest's "
                + "\(totalChunks) chunks", statementID: statementID)
        }
        return (rows, chunks)
    }

    /// The chunk index of a `…/statements/{id}/result/chunks/{n}[?…]` link of `statementID`, nil for any other link.
    static func chunkIndex(inLink link: String, statementID: String) -> Int? {
        let path = pathOnly(link)
        let prefix = "/api/2.0/sql/statements/\(statementID)/result/chunks/"
        guard path.hasPrefix(prefix) else { return nil }
        let rest = path.dropFirst(prefix.count)
        guard !rest.isEmpty, rest.count <= 9, rest.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int(rest)
    }

    /// A link without its query string (which may hold signatures: never printed).
    static func pathOnly(_ link: String) -> String {
        String(link.prefix { $0 != "?" && $0 != "#" }.prefix(200))
    }

    /// A response the warehouse could not have produced; the run stops before anything of it is checkpointed.
    static func protocolError(_ message: String, statementID: String) -> DatabricksError {
        DatabricksError(.protocolError, message,
            remedy: "The warehouse, or a proxy between it and cdfsync, sent a response it could not have produced; the "
                + "run stopped and nothing after the last complete version was checkpointed. Check for a proxy that "
                + "alters responses, then run the sync again.",
            statementID: statementID)
    }

    /// Downloads every chunk through its presigned link, K at a time, and decodes them in order.
    private func readExternal(statementID: String, manifest: ResultManifest, initialLinks: [ExternalLink],
                              sink: any ResultSink, bytes: inout Int, deadline: Date) throws -> (rows: Int, chunks: Int)
    {
        let total = manifest.totalChunkCount
        guard total > 0 else { return (0, 0) }
        let fetcher = ExternalLinkFetcher(
            statementID: statementID, totalChunks: total, initialLinks: initialLinks, inFlight: externalLinksInFlight,
            settings: settings, tokens: tokens, retryPolicy: retryPolicy)
        fetcher.start()
        defer { fetcher.stop() }
        var rows = 0
        let expected = manifest.schema.columnCount
        for index in 0..<total {
            if isCancelled() || Date() >= deadline {
                throw DatabricksError(.statementCanceled, "sync stopped while reading statement \(statementID)",
                    remedy: "Run the sync again; it resumes from the last checkpoint.", statementID: statementID)
            }
            let body = try fetcher.take(index)
            var decoder = ResultStreamDecoder(layout: .bareArray, expectedColumnCount: expected > 0 ? expected : nil)
            let context = "reading chunk \(index) of statement \(statementID) through its external link"
            do {
                try body.withUnsafeBytes { raw in try decoder.feed(raw) { row in try sink.row(row) } }
                _ = try decoder.finish()
            } catch let e as JSONArrayDecodingError {
                throw Self.malformed(e, statementID: statementID, context: context)
            }
            if let declared = manifest.chunks?.first(where: { $0.chunkIndex == index })?.rowCount,
                declared != Int64(decoder.rowCount)
            {
                throw DatabricksError(.invalidResponse,
                    "chunk \(index) of statement \(statementID) carries \(decoder.rowCount) rows, the manifest says \(declared)",
                    remedy: "The download was incomplete; nothing was checkpointed. Run the sync again.", statementID: statementID)
            }
            bytes += body.count
            rows += decoder.rowCount
            fetcher.recycle(consume body)
            try sink.chunkCompleted(index: index, rowCount: decoder.rowCount)
            HeapTrim.release()
        }
        return (rows, total)
    }

    /// Design §2.3, enforced here as well as by construction: only SELECT, DESCRIBE and SHOW ever leave the
    /// client, and only one statement at a time.
    static func checkReadOnly(_ sql: String) throws {
        let trimmed = sql.drop { $0.isWhitespace || $0 == "(" }
        let keyword = trimmed.prefix { $0.isLetter }.uppercased()
        guard ["SELECT", "DESCRIBE", "SHOW"].contains(keyword) else {
            throw DatabricksError(.configuration, "refusing to send a \(keyword.isEmpty ? "non-query" : keyword) statement",
                remedy: "cdfsync only reads: it sends SELECT, DESCRIBE and SHOW statements it built itself.")
        }
    }

    /// Asks the warehouse to cancel a statement; failures are ignored (the cancel is best-effort and asynchronous).
    public func cancel(statementID: String) {
        _ = try? api.send(.post, path: "/api/2.0/sql/statements/\(statementID)/cancel", body: Array("{}".utf8),
            rule: .idempotent, context: "cancelling statement \(statementID)", restart: {}, consume: { _ in })
    }

    // MARK: - Plumbing

    /// A statement response (POST or GET) whose `data_array`, if any, streamed into `sink`.
    private func exchange(
        _ method: HTTPRequest.Method, path: String, body: [UInt8]?, rule: RetryRule, context: String,
        sink: any ResultSink, bytes: inout Int
    ) throws -> StatementResponse {
        let (meta, rows) = try stream(method, path: path, body: body, rule: rule, context: context, sink: sink, bytes: &bytes)
        var response = try decode(StatementResponse.self, meta, context: context)
        if let r = response.result { response.result = try checkRowCount(r, streamed: rows, context: context) }
        return response
    }

    /// A bare chunk (`GET …/result/chunks/{n}`) whose rows streamed into `sink`.
    private func fetchChunk(path: String, context: String, expectedColumns: Int?, sink: any ResultSink, bytes: inout Int)
        throws -> ResultData
    {
        let (meta, rows) = try stream(.get, path: path, body: nil, rule: .idempotent, context: context,
            expectedColumns: expectedColumns, sink: sink, bytes: &bytes)
        return try checkRowCount(decode(ResultData.self, meta, context: context), streamed: rows, context: context)
    }

    /// Sends one request and feeds its 2xx body through the envelope decoder: rows go to `sink`, and the rest of
    /// the body (without `data_array`) comes back as JSON bytes, with the number of rows that streamed.
    private func stream(
        _ method: HTTPRequest.Method, path: String, body: [UInt8]?, rule: RetryRule, context: String,
        expectedColumns: Int? = nil, sink: any ResultSink, bytes: inout Int
    ) throws -> (meta: [UInt8], rows: Int) {
        let box = DecoderBox()
        box.decoder.setExpectedColumnCount(expectedColumns)
        var received = 0
        let statementID = path.split(separator: "/").dropFirst(4).first.map(String.init) ?? "(new)"
        _ = try api.send(method, path: path, body: body, rule: rule, context: context,
            restart: {
                if box.decoder.rowCount > 0 { sink.discardPartialChunk() }
                box.decoder = ResultStreamDecoder(layout: .envelope)
                box.decoder.setExpectedColumnCount(expectedColumns)
                received = 0
            },
            consume: { chunk in
                received += chunk.count
                do {
                    try box.decoder.feed(chunk) { row in try sink.row(row) }
                } catch let e as JSONArrayDecodingError {
                    throw Self.malformed(e, statementID: statementID, context: context)
                }
            })
        do {
            let meta = try box.decoder.finish()
            bytes += received
            return (meta, box.decoder.rowCount)
        } catch let e as JSONArrayDecodingError {
            throw Self.malformed(e, statementID: statementID, context: context)
        }
    }

    private func decode<T: Decodable>(_ type: T.Type, _ meta: [UInt8], context: String) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(meta))
        } catch {
            throw DatabricksError(.invalidResponse, "\(context): the response is not a valid statement response (\(error))",
                remedy: "Check that the host is a Databricks workspace; nothing was checkpointed.")
        }
    }

    /// A chunk's declared `row_count` must match the rows that streamed through; the result carries the count seen.
    private func checkRowCount(_ result: ResultData, streamed: Int, context: String) throws -> ResultData {
        if let declared = result.rowCount, declared != Int64(streamed) {
            throw DatabricksError(.invalidResponse, "\(context): chunk declares \(declared) rows but carries \(streamed)",
                remedy: "The response was malformed; nothing was checkpointed. Run the sync again.")
        }
        var r = result
        if r.rowCount != nil || streamed > 0 { r.rowCount = Int64(streamed) }
        return r
    }

    static func malformed(_ e: JSONArrayDecodingError, statementID: String, context: String) -> DatabricksError {
        DatabricksError(.invalidResponse,
            "malformed result \(context.contains(statementID) ? "(\(context))" : "for statement \(statementID) (\(context))") at byte \(e.byteOffset), row \(e.rowIndex): \(e.reason)",
            remedy: "The warehouse sent a malformed chunk; the checkpoint does not move past it. Run the sync again.",
            statementID: statementID)
    }
}

@available(*, unavailable)
extension StatementClient: Sendable {}

private final class DecoderBox {
    var decoder = ResultStreamDecoder(layout: .envelope)
}
