import CDFSyncCore
import Foundation

/// Executes statements over the Statement Execution API 2.0 and streams their JSON_ARRAY results.
///
/// Submits with `wait_timeout`, polls with backoff against a wall-clock deadline (cancelling the statement
/// when it passes or when `isCancelled` says so), follows every chunk, and checks the row sum against
/// `total_row_count`. Bytes flow from libcurl straight into the streaming decoder; no result is held whole.
///
/// - Important: not thread-safe; use one client per thread.
public final class StatementClient {
    public let settings: ConnectionSettings
    public var retryPolicy = RetryPolicy()
    /// Seconds a statement may take from submission to its last chunk.
    public var statementDeadline: Double = 3600
    /// Seconds the POST waits on the server (`wait_timeout`: 0 or 5–50).
    public var waitTimeout = 10
    /// Called with human-readable progress ("warehouse starting (12s)").
    public var onProgress: (String) -> Void = { _ in }
    /// Polled between requests; when it returns true the statement is cancelled and `statementCanceled` thrown.
    public var isCancelled: () -> Bool = { false }

    let transport: CurlTransport
    let tokens: any TokenProvider

    public init(settings: ConnectionSettings, tokens: (any TokenProvider)? = nil) {
        self.settings = settings
        self.transport = CurlTransport(options: settings.transport)
        switch settings.authentication {
        case .personalAccessToken(let t): self.tokens = tokens ?? StaticTokenProvider(token: t)
        case .oauthM2M(let id, let secret, let scope):
            self.tokens = tokens ?? OAuthM2MTokenProvider(baseURL: settings.baseURL, clientID: id, clientSecret: secret, scope: scope)
        }
    }

    // MARK: - Executing

    /// Runs `statement` and streams its rows to `sink`.
    /// - Throws: `DatabricksError` (categorised, with a remedy); errors thrown by the sink pass through.
    @discardableResult
    public func execute(_ statement: Statement, sink: any ResultSink) throws -> StatementOutcome {
        let started = Date()
        let deadline = started.addingTimeInterval(statementDeadline)
        let body = statement.requestBody(
            warehouseID: settings.warehouseID, catalog: settings.catalog, schema: settings.schema, waitTimeout: waitTimeout)
        var bytes = 0
        var response = try exchange(
            .post, path: "/api/2.0/sql/statements", body: body, rule: .submit, context: "submitting a statement to warehouse \(settings.warehouseID)",
            sink: sink, bytes: &bytes)
        let statementID = response.statementID
        guard !statementID.isEmpty else {
            throw DatabricksError(.invalidResponse, "the statement response has no statement_id",
                remedy: "The server is not speaking the Statement Execution API; check the host.")
        }

        var attempt = 0
        var pendingSince: Date?
        while let state = response.status?.state, state == .pending || state == .running {
            if isCancelled() {
                cancel(statementID: statementID)
                throw DatabricksError(.statementCanceled, "statement \(statementID) was cancelled on request",
                    remedy: "Run the sync again; nothing past the last checkpoint was applied.", statementID: statementID)
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
                onProgress("warehouse starting (\(Int(Date().timeIntervalSince(since)))s)")
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
        case .succeeded, .closed where response.manifest != nil && response.result != nil:
            break
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
        guard let manifest = response.manifest else {
            throw DatabricksError(.invalidResponse, "statement \(statementID) succeeded without a manifest",
                remedy: "Unexpected server response; report it.", statementID: statementID)
        }
        try sink.manifestReady(manifest, statementID: statementID)

        var rows = 0
        var chunks = 0
        var result = response.result
        var chunkIndex = result?.chunkIndex ?? 0
        if let r = result, r.rowCount != nil || r.chunkIndex != nil {
            let n = Int(r.rowCount ?? 0)
            rows += n
            chunks += 1
            try sink.chunkCompleted(index: chunkIndex, rowCount: n)
        }
        if let links = result?.externalLinks, !links.isEmpty {
            throw DatabricksError(.invalidResponse, "statement \(statementID) answered with EXTERNAL_LINKS to an INLINE request",
                remedy: "Unexpected server response; report it.", statementID: statementID)
        }
        while let next = result?.nextChunkInternalLink ?? result?.nextChunkIndex.map({ "/api/2.0/sql/statements/\(statementID)/result/chunks/\($0)" }) {
            if isCancelled() {
                throw DatabricksError(.statementCanceled, "sync cancelled while reading statement \(statementID)",
                    remedy: "Run the sync again; nothing past the last checkpoint was applied.", statementID: statementID)
            }
            chunkIndex = result?.nextChunkIndex ?? chunkIndex + 1
            let chunk = try exchange(.get, path: next, body: nil, rule: .idempotent,
                context: "reading chunk \(chunkIndex) of statement \(statementID)", sink: sink, bytes: &bytes,
                decodeAs: ResultData.self)
            let n = Int(chunk.rowCount ?? 0)
            rows += n
            chunks += 1
            try sink.chunkCompleted(index: chunkIndex, rowCount: n)
            result = chunk
        }
        if manifest.totalRowCount != Int64(rows) {
            throw DatabricksError(.invalidResponse,
                "statement \(statementID) delivered \(rows) rows but its manifest says \(manifest.totalRowCount)",
                remedy: "Rows were lost in transfer; nothing was checkpointed. Run the sync again.", statementID: statementID)
        }
        if manifest.truncated == true {
            throw DatabricksError(.invalidResponse, "statement \(statementID) result was truncated by the server",
                remedy: "The result exceeded a size limit; cdfsync will read smaller ranges. Nothing was checkpointed.",
                statementID: statementID)
        }
        return StatementOutcome(
            statementID: statementID, manifest: manifest, rowCount: rows, bytesReceived: bytes, chunkCount: chunks,
            seconds: Date().timeIntervalSince(started))
    }

    /// Asks the warehouse to cancel a statement; failures are ignored (the cancel is best-effort and asynchronous).
    public func cancel(statementID: String) {
        _ = try? exchangeRaw(.post, path: "/api/2.0/sql/statements/\(statementID)/cancel", body: Array("{}".utf8),
            rule: .idempotent, context: "cancelling statement \(statementID)")
    }

    /// A control-plane GET or POST whose small JSON body is returned whole (warehouses, oidc).
    public func exchangeRaw(_ method: HTTPRequest.Method, path: String, body: [UInt8]?, rule: RetryRuleKind = .idempotent,
                            context: String) throws -> [UInt8] {
        var out: [UInt8] = []
        _ = try send(method, path: path, body: body, rule: rule == .submit ? .submit : .idempotent, context: context,
            restart: { out.removeAll() }, consume: { out.append(contentsOf: $0) })
        return out
    }

    public enum RetryRuleKind: Sendable { case submit, idempotent }

    // MARK: - Plumbing

    /// Sends one request whose 2xx body is a statement envelope or a chunk, streaming rows into `sink`.
    private func exchange<T: Decodable>(
        _ method: HTTPRequest.Method, path: String, body: [UInt8]?, rule: RetryRule, context: String,
        sink: any ResultSink, bytes: inout Int, decodeAs: T.Type = StatementResponse.self
    ) throws -> T {
        let box = DecoderBox()
        var received = 0
        let statementID = path.split(separator: "/").dropFirst(4).first.map(String.init) ?? "(new)"
        _ = try send(method, path: path, body: body, rule: rule, context: context,
            restart: {
                if box.decoder.rowCount > 0 { sink.discardPartialChunk() }
                box.decoder = ResultStreamDecoder(layout: .envelope)
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
        let meta: [UInt8]
        do {
            meta = try box.decoder.finish()
        } catch let e as JSONArrayDecodingError {
            throw Self.malformed(e, statementID: statementID, context: context)
        }
        bytes += received
        do {
            var decoded = try JSONDecoder().decode(T.self, from: Data(meta))
            // A chunk's declared row_count must match what streamed through.
            if var r = decoded as? ResultData {
                if let declared = r.rowCount, declared != Int64(box.decoder.rowCount) {
                    throw DatabricksError(.invalidResponse,
                        "\(context): chunk declares \(declared) rows but carries \(box.decoder.rowCount)",
                        remedy: "The response was malformed; nothing was checkpointed. Run the sync again.")
                }
                r.rowCount = Int64(box.decoder.rowCount)
                decoded = r as! T
            } else if var s = decoded as? StatementResponse, var r = s.result {
                if let declared = r.rowCount, declared != Int64(box.decoder.rowCount) {
                    throw DatabricksError(.invalidResponse,
                        "\(context): chunk 0 declares \(declared) rows but carries \(box.decoder.rowCount)",
                        remedy: "The response was malformed; nothing was checkpointed. Run the sync again.")
                }
                if r.rowCount != nil || box.decoder.rowCount > 0 { r.rowCount = Int64(box.decoder.rowCount) }
                s.result = r
                decoded = s as! T
            }
            return decoded
        } catch let e as DatabricksError {
            throw e
        } catch {
            throw DatabricksError(.invalidResponse, "\(context): the response is not a valid statement response (\(error))",
                remedy: "Check that the host is a Databricks workspace; nothing was checkpointed.")
        }
    }

    static func malformed(_ e: JSONArrayDecodingError, statementID: String, context: String) -> DatabricksError {
        DatabricksError(.invalidResponse,
            "malformed result for statement \(statementID) (\(context)) at byte \(e.byteOffset), row \(e.rowIndex): \(e.reason)",
            remedy: "The warehouse sent a malformed chunk; nothing past the last checkpoint was applied. Run the sync again.",
            statementID: statementID)
    }

    /// Sends with auth, retries and error classification; 2xx bodies go to `consume` as they arrive.
    private func send(
        _ method: HTTPRequest.Method, path: String, body: [UInt8]?, rule: RetryRule, context: String,
        restart: () throws -> Void, consume: (UnsafeRawBufferPointer) throws -> Void
    ) throws -> HTTPResponseHead {
        let started = Date()
        var attempt = 0
        var refreshedToken = false
        while true {
            attempt += 1
            let token = try tokens.bearerToken(using: transport)
            var headers = [("Authorization", "Bearer \(token.reveal())"), ("Accept", "application/json")]
            if body != nil { headers.append(("Content-Type", "application/json")) }
            let request = HTTPRequest(method: method, url: settings.baseURL + path, headers: headers, body: body)
            var errorBody: [UInt8] = []
            var status = 0
            var delivered = false
            let failure: DatabricksError
            let retryable: Bool
            do {
                let head = try transport.perform(request, onHead: { h in status = h.status }) { chunk in
                    if status >= 200 && status < 300 {
                        delivered = true
                        try consume(chunk)
                    } else if errorBody.count < 1 << 20 {
                        errorBody.append(contentsOf: chunk)
                    }
                }
                if head.status >= 200 && head.status < 300 { return head }
                failure = ErrorClassification.http(status: head.status, body: errorBody, headers: head,
                    host: settings.hostName, context: context)
                if failure.category == .authenticationFailed && head.status == 403 && !refreshedToken && tokens.invalidate() {
                    refreshedToken = true
                    continue
                }
                retryable = rule.shouldRetry(status: head.status)
            } catch let e as TransportError {
                failure = ErrorClassification.transport(e, context: context)
                retryable = rule.shouldRetry(e)
            }
            let elapsed = Date().timeIntervalSince(started)
            guard retryable, attempt < retryPolicy.maxAttempts, elapsed < retryPolicy.budget else { throw failure }
            if delivered { try restart() }
            let wait = retryPolicy.delay(attempt: attempt, retryAfter: failure.retryAfter)
            onProgress("\(failure.category) — retrying in \(String(format: "%.1f", wait))s (attempt \(attempt + 1))")
            Thread.sleep(forTimeInterval: wait)
        }
    }
}

@available(*, unavailable)
extension StatementClient: Sendable {}

private final class DecoderBox {
    var decoder = ResultStreamDecoder(layout: .envelope)
}
