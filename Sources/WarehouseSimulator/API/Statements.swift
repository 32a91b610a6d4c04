import CDFSyncCore
import Foundation
import Synchronization
import NIOCore

/// One submitted statement and its timeline on the simulator clock.
struct StatementRecord: Sendable {
    enum Outcome: Sendable {
        case success(ResultSet)
        case failure(SQLError)
    }

    var id: String
    /// The SQL text as submitted (fault kind `tamper` matches it).
    var sql = ""
    /// The statement that computed the result: `id` itself, or the statement a result-cache hit reuses
    /// (`cache_origin_statement_id` in Databricks' query history).
    var resultID: String
    var principal: Int
    var warehouseID: String
    var submittedAt: Double
    /// When it leaves PENDING (its warehouse is up).
    var startAt: Double
    /// When it reaches its outcome.
    var finishAt: Double
    var outcome: Outcome
    /// `JSON_ARRAY` or `CSV`.
    var format: String
    var external: Bool
    var rowsPerChunk: Int
    var canceledAt: Double?
    var closedAt: Double?
    /// The last submit or poll; a statement not polled for `abandonAfter` seconds while running is cancelled.
    var lastPolledAt: Double = 0
    var abandonAfter: Double = .infinity
    /// Statement responses still to say PENDING, then RUNNING, whatever the clock says (fault kind `queue`: a
    /// statement queued on a running warehouse); each response rendered counts one down.
    var queuedAnswers = 0
    var runningAnswers = 0

    /// When the server gives up on an unpolled statement, if it does.
    var abandonedAt: Double? {
        let a = lastPolledAt + abandonAfter
        return finishAt > a && canceledAt == nil ? a : nil
    }

    func state(at t: Double, resultTTL: Double) -> String {
        if let c = closedAt, t >= c { return "CLOSED" }
        if canceledAt != nil { return "CANCELED" }
        if let a = abandonedAt, t >= a { return "CANCELED" }
        if queuedAnswers > 0 { return "PENDING" }
        if runningAnswers > 0 { return "RUNNING" }
        if t < startAt { return "PENDING" }
        if t < finishAt { return "RUNNING" }
        switch outcome {
        case .success: return t >= finishAt + resultTTL ? "CLOSED" : "SUCCEEDED"
        case .failure: return "FAILED"
        }
    }

    var terminalAt: Double { min(canceledAt ?? finishAt, abandonedAt ?? .infinity, closedAt ?? .infinity, finishAt) }

    var rowCount: Int {
        if case .success(let r) = outcome { return r.rows.count }
        return 0
    }

    var chunkCount: Int { (rowCount + rowsPerChunk - 1) / rowsPerChunk }

    func chunkRange(_ i: Int) -> Range<Int> {
        let lo = i * rowsPerChunk
        return lo..<min(rowCount, lo + rowsPerChunk)
    }
}

/// Parsed and validated fields of an execute request.
struct ExecuteRequest {
    var statement: String
    var warehouseID: String
    var catalog: String?
    var schema: String?
    var parameters: [String: BoundParameter]
    var disposition: String
    var format: String
    var waitTimeout: Int
    var cancelOnTimeout: Bool
    var rowLimit: Int?
    var sessionID: String?
}

extension Simulator {
    /// Validates the request body; a failure is an HTTP error response.
    func parseExecute(_ body: [UInt8]) -> Result<ExecuteRequest, APIError> {
        guard let obj = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] else {
            return .failure(APIError(400, "MALFORMED_REQUEST", "Could not parse request object: Expected JSON object."))
        }
        func bad(_ msg: String) -> Result<ExecuteRequest, APIError> {
            .failure(APIError(400, "INVALID_PARAMETER_VALUE", msg))
        }
        guard let statement = obj["statement"] as? String, !statement.isEmpty else {
            return bad("statement is required and must be a non-empty string.")
        }
        guard statement.utf8.count <= 16 << 20 else { return bad("statement exceeds the maximum size of 16 MiB.") }
        guard let wid = obj["warehouse_id"] as? String, !wid.isEmpty else {
            return bad("warehouse_id is required.")
        }
        let disposition = ((obj["disposition"] as? String) ?? "INLINE").uppercased()
        let format = ((obj["format"] as? String) ?? "JSON_ARRAY").uppercased()
        guard ["INLINE", "EXTERNAL_LINKS"].contains(disposition) else {
            if disposition == "INLINE_OR_EXTERNAL_LINKS" {
                return .failure(
                    APIError(501, "NOT_IMPLEMENTED", "disposition INLINE_OR_EXTERNAL_LINKS is not supported by the warehouse simulator."))
            }
            return bad("Invalid disposition: \(disposition). Valid values are INLINE, EXTERNAL_LINKS.")
        }
        guard ["JSON_ARRAY", "ARROW_STREAM", "CSV"].contains(format) else {
            return bad("Invalid format: \(format). Valid values are JSON_ARRAY, ARROW_STREAM, CSV.")
        }
        if disposition == "INLINE" && format != "JSON_ARRAY" {
            return bad("The format \(format) is not supported with disposition INLINE. Use format JSON_ARRAY, or disposition EXTERNAL_LINKS.")
        }
        if format == "ARROW_STREAM" {
            return .failure(
                APIError(501, "NOT_IMPLEMENTED", "format ARROW_STREAM is not supported by the warehouse simulator; use JSON_ARRAY or CSV."))
        }
        let waitText = (obj["wait_timeout"] as? String) ?? "10s"
        guard waitText.hasSuffix("s"), let wait = Int(waitText.dropLast()), wait == 0 || (5...50).contains(wait) else {
            return bad("wait_timeout must be 0s or between 5s and 50s, got '\(waitText)'.")
        }
        let onTimeout = ((obj["on_wait_timeout"] as? String) ?? "CONTINUE").uppercased()
        guard onTimeout == "CONTINUE" || onTimeout == "CANCEL" else {
            return bad("Invalid on_wait_timeout: \(onTimeout). Valid values are CONTINUE, CANCEL.")
        }
        var params: [String: BoundParameter] = [:]
        if let list = obj["parameters"] {
            guard let arr = list as? [[String: Any]] else { return bad("parameters must be an array of objects.") }
            for p in arr {
                guard let name = p["name"] as? String, !name.isEmpty else {
                    return bad("Every parameter needs a name; positional parameters are not supported.")
                }
                var value: String?
                if let v = p["value"], !(v is NSNull) {
                    guard let s = v as? String else { return bad("Parameter \(name): value must be a string.") }
                    value = s
                }
                let type = ((p["type"] as? String) ?? "STRING").uppercased().trimmingCharacters(in: .whitespaces)
                if type.hasPrefix("ARRAY") || type.hasPrefix("MAP") || type.hasPrefix("STRUCT") {
                    return bad("Parameter \(name): type \(type) is not supported; ARRAY, MAP and STRUCT are not allowed.")
                }
                guard (try? SQLType(parsing: type)) != nil else { return bad("Parameter \(name): invalid type \(type).") }
                if let v = value {
                    let t = try! SQLType(parsing: type)
                    if t.isNumeric && Double(v) == nil || t.isTimestamp && (try? Timestamp.parseMillis(v)) == nil
                        || t.name == "BOOLEAN" && !["true", "false"].contains(v.lowercased())
                    {
                        return bad("Parameter \(name): the value '\(v)' cannot be cast to \(type).")
                    }
                }
                params[name] = BoundParameter(value: value, type: type)
            }
        }
        var sessionID: String?
        if let sid = obj["session_id"] {
            guard let s = sid as? String else { return bad("session_id must be a string.") }
            sessionID = s
        }
        var rowLimit: Int?
        if let rl = obj["row_limit"] {
            guard let n = (rl as? NSNumber)?.intValue ?? Int((rl as? String) ?? ""), n >= 0 else {
                return bad("row_limit must be a non-negative integer.")
            }
            rowLimit = n
        }
        return .success(
            ExecuteRequest(
                statement: statement, warehouseID: wid, catalog: obj["catalog"] as? String, schema: obj["schema"] as? String,
                parameters: params, disposition: disposition, format: format, waitTimeout: wait,
                cancelOnTimeout: onTimeout == "CANCEL", rowLimit: rowLimit, sessionID: sessionID))
    }

    func newStatementID(_ s: inout SimState) -> String {
        s.statementCounter += 1
        var rng = SystemRandomNumberGenerator()
        let t = UInt64(clock.now * 1000)
        let a = UInt32(truncatingIfNeeded: t >> 16)
        let b = UInt16(truncatingIfNeeded: t)
        let c = UInt16(truncatingIfNeeded: s.statementCounter) & 0x0FFF | 0x1000
        let d = UInt16.random(in: 0x8000...0xBFFF, using: &rng)
        let e = UInt64.random(in: 0...0xFFFF_FFFF_FFFF, using: &rng)
        func hex<T: BinaryInteger>(_ v: T, _ w: Int) -> String {
            let h = String(v, radix: 16)
            return String(repeating: "0", count: max(0, w - h.count)) + h
        }
        return "01f0\(hex(a & 0xFFFF, 4))-\(hex(b, 4))-\(hex(c, 4))-\(hex(d, 4))-\(hex(e, 12))"
    }

    /// POST /api/2.0/sql/statements
    func executeStatement(_ req: APIRequest, principal: Int, host: String) async -> APIResponse {
        let parsed: ExecuteRequest
        switch parseExecute(req.body) {
        case .success(let p): parsed = p
        case .failure(let e): return e.response()
        }
        let now = clock.now
        // Warehouse, permission and a consistent copy of the catalog.
        let prep: Result<
            (tables: [String: TableState], access: Access, cat: String, sch: String, readyAt: Double, generation: UInt64),
            APIError
        > =
            state.withLock { s in
                guard var w = s.warehouses[parsed.warehouseID] else {
                    let status = configuration.unknownWarehouseStatus
                    return .failure(
                        APIError(
                            status, status == 404 ? "RESOURCE_DOES_NOT_EXIST" : "INVALID_PARAMETER_VALUE",
                            "Warehouse \(parsed.warehouseID) does not exist."))
                }
                let p = s.principals[principal]
                var sessionCatalog: String?, sessionSchema: String?
                if let sid = parsed.sessionID {
                    guard let sess = s.sessions[sid], sess.principal == principal else {
                        return .failure(APIError(404, "NOT_FOUND", "Session \(sid) not found."))
                    }
                    sessionCatalog = sess.catalog
                    sessionSchema = sess.schema
                }
                let perm = p.warehouses[parsed.warehouseID]?.uppercased() ?? ""
                guard ["CAN_USE", "CAN_MANAGE", "IS_OWNER"].contains(perm) else {
                    return .failure(
                        APIError(
                            403, "PERMISSION_DENIED",
                            "User \(p.name) does not have permission to use warehouse \(parsed.warehouseID) (CAN_USE is required)."))
                }
                let ready = w.ensureStarted(now: now)
                s.warehouses[parsed.warehouseID] = w
                return .success(
                    (s.tables, Access(p), parsed.catalog ?? sessionCatalog ?? s.defaultCatalog,
                     parsed.schema ?? sessionSchema ?? s.defaultSchema, ready, s.dataGeneration))
            }
        let ctx: (tables: [String: TableState], access: Access, cat: String, sch: String, readyAt: Double, generation: UInt64)
        switch prep {
        case .success(let c): ctx = c
        case .failure(let e): return e.response()
        }
        // The result cache answers a query it has seen since the last table change; otherwise run the SQL now,
        // against the catalog as of submission.
        let cacheKey = configuration.resultCacheBytes > 0
            ? ResultCache.key(parsed, principal: principal, catalog: ctx.cat, schema: ctx.sch) : nil
        let cached = cacheKey.flatMap { key in resultCache.withLock { $0.lookup(key, generation: ctx.generation) } }
        var outcome: StatementRecord.Outcome
        if let fault = takeStatementFault(parsed.statement) {
            outcome = .failure(fault)
        } else if let cached {
            outcome = .success(cached.result)
        } else {
            outcome = run(parsed, tables: ctx.tables, access: ctx.access, catalog: ctx.cat, schema: ctx.sch, now: now)
        }
        let startAt = max(now, ctx.readyAt)
        let queued = takeQueueFault(parsed.statement)
        let id = state.withLock { s -> String in
            // Forget statements past their retention now and then.
            if s.statementCounter % 1024 == 0 {
                let retention = configuration.statementRetention
                s.statements = s.statements.filter { now < $0.value.terminalAt + retention }
            }
            let id = newStatementID(&s)
            s.statements[id] = StatementRecord(
                id: id, resultID: cached?.originID ?? id, principal: principal, warehouseID: parsed.warehouseID,
                submittedAt: now, startAt: startAt,
                finishAt: startAt + configuration.executionDelay, outcome: outcome, format: parsed.format,
                external: parsed.disposition == "EXTERNAL_LINKS",
                rowsPerChunk: parsed.disposition == "EXTERNAL_LINKS"
                    ? configuration.rowsPerExternalChunk : configuration.rowsPerChunk,
                lastPolledAt: now, abandonAfter: configuration.abandonAfter)
            s.statements[id]?.sql = parsed.statement
            if let queued {
                s.statements[id]?.queuedAnswers = queued
                s.statements[id]?.runningAnswers = 1
            }
            return id
        }
        if cached == nil, let cacheKey, case .success(let result) = outcome {
            resultCache.withLock { $0.insert(cacheKey, originID: id, result: result, generation: ctx.generation) }
        }
        outcome = .failure(SQLError("", "", ""))  // release our reference to the rows
        // wait_timeout / on_wait_timeout.
        var rec = state.withLock { $0.statements[id]! }
        if rec.state(at: clock.now, resultTTL: configuration.resultTTL) == "PENDING"
            || rec.state(at: clock.now, resultTTL: configuration.resultTTL) == "RUNNING"
        {
            if parsed.waitTimeout > 0 {
                // A queued statement moves on with polls, not time: waiting would only delay the answer.
                // The task suspends between looks; no thread waits.
                if !clock.isManual && queued == nil {
                    let deadline = Date().addingTimeInterval(Double(parsed.waitTimeout))
                    while Date() < deadline {
                        let st = state.withLock { $0.statements[id]! }.state(at: clock.now, resultTTL: configuration.resultTTL)
                        if st != "PENDING" && st != "RUNNING" { break }
                        try? await Task.sleep(nanoseconds: 10_000_000)
                    }
                }
                let st = state.withLock { $0.statements[id]! }.state(at: clock.now, resultTTL: configuration.resultTTL)
                if (st == "PENDING" || st == "RUNNING") && parsed.cancelOnTimeout {
                    let t = clock.now
                    state.withLock { s in s.statements[id]?.canceledAt = t }
                }
            }
            rec = state.withLock { $0.statements[id]! }
        }
        return answer(rec, host: host)
    }

    /// Renders a statement response, counting down the PENDING / RUNNING answers a `queue` fault holds it in.
    func answer(_ r: StatementRecord, host: String) -> APIResponse {
        let response = renderStatement(r, host: host)
        if r.queuedAnswers > 0 || r.runningAnswers > 0 {
            state.withLock { s in
                guard var x = s.statements[r.id] else { return }
                if x.queuedAnswers > 0 { x.queuedAnswers -= 1 } else if x.runningAnswers > 0 { x.runningAnswers -= 1 }
                s.statements[r.id] = x
            }
        }
        return response
    }

    /// Runs the SQL of `parsed` against `tables` as of submission.
    func run(
        _ parsed: ExecuteRequest, tables: [String: TableState], access: Access, catalog: String, schema: String,
        now: Double
    ) -> StatementRecord.Outcome {
        do throws(SQLError) {
            let stmt = try Parser.parse(parsed.statement)
            let ex = Executor(
                tables: tables, access: access, defaultCatalog: catalog, defaultSchema: schema,
                parameters: parsed.parameters, sql: parsed.statement, nowMillis: Int64(now * 1000))
            var result = try ex.execute(stmt)
            if let limit = parsed.rowLimit, result.rows.count > limit {
                result.rows = SlicedRows(base: result.rows, offset: 0, count: limit)
                result.truncated = true
            }
            if !parsed.disposition.hasPrefix("EXTERNAL"), let cap = configuration.inlineByteLimit,
                result.rows.count * max(1, result.rows.estimatedBytesPerRow) > cap
            {
                var e = SQLError("", "", "")
                e.plainMessage =
                    "Inline byte limit exceeded. Statements executed with disposition=INLINE can have a result size of at most \(cap) bytes. Please execute the statement with disposition=EXTERNAL_LINKS if you want to download the full result."
                throw e
            }
            return .success(result)
        } catch {
            return .failure(error)
        }
    }

    func lookupStatement(_ id: String, principal: Int) -> Result<StatementRecord, APIError> {
        let now = clock.now
        return state.withLock { s in
            guard let r = s.statements[id], r.principal == principal else {
                return .failure(APIError(404, "NOT_FOUND", "Statement \(id) not found."))
            }
            let st = r.state(at: now, resultTTL: configuration.resultTTL)
            let finished = ["SUCCEEDED", "FAILED", "CANCELED", "CLOSED"].contains(st)
            if finished && now >= r.terminalAt + configuration.statementRetention {
                s.statements[id] = nil
                return .failure(APIError(404, "NOT_FOUND", "Statement \(id) not found."))
            }
            if st == "PENDING" || st == "RUNNING" { s.statements[id]?.lastPolledAt = now }
            return .success(r)
        }
    }

    /// GET /api/2.0/sql/statements/{id}
    func getStatement(_ id: String, principal: Int, host: String) -> APIResponse {
        switch lookupStatement(id, principal: principal) {
        case .success(let r): return answer(r, host: host)
        case .failure(let e): return e.response()
        }
    }

    /// POST /api/2.0/sql/statements/{id}/cancel
    func cancelStatement(_ id: String, principal: Int) -> APIResponse {
        switch lookupStatement(id, principal: principal) {
        case .success(let r):
            let now = clock.now
            let st = r.state(at: now, resultTTL: configuration.resultTTL)
            if st == "PENDING" || st == "RUNNING" {
                state.withLock { $0.statements[id]?.canceledAt = now }
            }
            return APIResponse(status: 200, json: Array("{}".utf8))
        case .failure(let e): return e.response()
        }
    }

    /// DELETE /api/2.0/sql/statements/{id}
    func closeStatement(_ id: String, principal: Int) -> APIResponse {
        switch lookupStatement(id, principal: principal) {
        case .success(let r):
            let now = clock.now
            let st = r.state(at: now, resultTTL: configuration.resultTTL)
            state.withLock { s in
                if st == "PENDING" || st == "RUNNING" {
                    s.statements[id]?.canceledAt = now
                    s.statements[id]?.finishAt = min(r.finishAt, now)
                }
                if s.statements[id]?.closedAt == nil { s.statements[id]?.closedAt = now }
            }
            return APIResponse(status: 200, json: Array("{}".utf8))
        case .failure(let e): return e.response()
        }
    }

    /// GET /api/2.0/sql/statements/{id}/result/chunks/{n}
    func getChunk(_ id: String, index: String, principal: Int, query: [String: String], host: String) -> APIResponse {
        let r: StatementRecord
        switch lookupStatement(id, principal: principal) {
        case .success(let x): r = x
        case .failure(let e): return e.response()
        }
        let st = r.state(at: clock.now, resultTTL: configuration.resultTTL)
        guard st == "SUCCEEDED", case .success = r.outcome else {
            if st == "CLOSED" {
                return APIError(404, "NOT_FOUND", "The result of statement \(id) is no longer available (statement is CLOSED).").response()
            }
            return APIError(400, "BAD_REQUEST", "Statement \(id) is in state \(st); results are available only once it has SUCCEEDED.").response()
        }
        guard let n = Int(index), n >= 0, n < r.chunkCount else {
            return APIError(
                400, "INVALID_PARAMETER_VALUE", "Chunk index \(index) is out of range; the result has \(r.chunkCount) chunk(s).")
                .response()
        }
        if configuration.requireChunkLinkQuery && n > 0 && query["row_offset"] == nil {
            return APIError(
                400, "INVALID_PARAMETER_VALUE",
                "Chunk \(n) was requested without the row_offset of its link; follow the next_chunk_internal_link the "
                    + "previous chunk gave.").response()
        }
        if let off = query["row_offset"] {
            guard let o = Int(off), o == r.chunkRange(n).lowerBound else {
                return APIError(
                    400, "INVALID_PARAMETER_VALUE",
                    "row_offset \(off) does not match chunk \(n), which starts at row \(r.chunkRange(n).lowerBound).").response()
            }
        }
        var out = ByteBuffer()
        out.reserveCapacity(4096)
        if r.external {
            out.writeStaticString("{\"external_links\":[")
            appendLink(r, chunk: n, host: host, out: &out)
            out.writeStaticString("]}")
        } else {
            appendInlineChunk(r, chunk: n, out: &out)
        }
        return APIResponse(status: 200, body: out)
    }
}

/// An HTTP-level API error: `{"error_code": ..., "message": ...}`.
struct APIError: Error, Sendable {
    var status: Int
    var code: String
    var message: String
    var numericCode = false
    var retryAfter: Int?

    init(_ status: Int, _ code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    func response() -> APIResponse {
        var w = JSONWriter()
        w.beginObject()
        w.key("error_code")
        if numericCode { w.int(Int64(status)) } else { w.string(code) }
        w.key("message")
        w.string(message)
        w.endObject()
        var r = APIResponse(status: status, json: w.bytes, contentType: "application/json; charset=utf-8")
        r.setHeader("x-databricks-reason-phrase", message.replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " "))
        if let ra = retryAfter { r.setHeader("retry-after", String(ra)) }
        return r
    }
}
