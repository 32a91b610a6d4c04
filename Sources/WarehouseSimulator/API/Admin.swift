import CDFSyncCore
import Foundation
import Synchronization
import Hummingbird

/// The admin interface under `/_sim/` (not part of the Databricks API), authenticated with the admin token
/// (``AuthenticationMiddleware``).
extension Simulator {
    func adminError(_ status: Int, _ message: String) -> APIResponse {
        var w = JSONWriter()
        w.beginObject()
        w.key("error")
        w.string(message)
        w.endObject()
        return APIResponse(status: status, json: w.bytes)
    }

    private func adminOK(_ fields: [(String, String)], ints: [(String, Int)] = []) -> APIResponse {
        var w = JSONWriter()
        w.beginObject()
        for (k, v) in fields {
            w.key(k)
            w.string(v)
        }
        for (k, v) in ints {
            w.key(k)
            w.int(Int64(v))
        }
        w.endObject()
        return APIResponse(status: 200, json: w.bytes)
    }

    /// The admin routes (authenticated by ``AuthenticationMiddleware``); table names and ids in paths are
    /// percent-decoded.
    func addAdminRoutes(_ router: Router<SimulatorContext>) {
        let admin = router.group("/_sim")
        admin.get("hooks/:name") { [self] _, ctx in webhookAdmin(ctx.decodedParameter("name")) }
        admin.get("health") { [self] _, _ in adminHealth() }
        admin.post("tables") { [self] _, ctx in adminAddTable(ctx.request) }
        admin.get("statements/:id") { [self] _, ctx in adminStatement(ctx.decodedParameter("id")) }
        admin.get("tables/:name") { [self] _, ctx in adminTable(ctx.decodedParameter("name")) }
        admin.delete("tables/:name") { [self] _, ctx in adminDropTable(ctx.decodedParameter("name")) }
        admin.post("tables/:name/commits") { [self] _, ctx in adminAppendCommit(ctx.decodedParameter("name"), ctx.request) }
        admin.post("commits") { [self] _, ctx in adminAppendCommits(ctx.request) }
        admin.post("tables/:name/vacuum") { [self] _, ctx in adminVacuum(ctx.decodedParameter("name"), ctx.request) }
        admin.post("tables/:name/synthetic-commit") { [self] _, ctx in
            adminSyntheticCommit(ctx.decodedParameter("name"), ctx.request)
        }
        admin.post("faults") { [self] _, ctx in adminAddFault(ctx.request) }
        admin.delete("faults") { [self] _, _ in
            clearFaults()
            return adminOK([])
        }
        admin.get("faults") { [self] _, _ in
            let faults = state.withLock { $0.faults }
            let data = (try? JSONEncoder().encode(faults)) ?? Data("[]".utf8)
            return APIResponse(status: 200, json: Array(data))
        }
        admin.post("warehouses/:id/state") { [self] _, ctx in adminWarehouseState(ctx.decodedParameter("id"), ctx.request) }
        admin.post("clock/advance") { [self] _, ctx in adminAdvanceClock(ctx.request) }
        admin.get("clock") { [self] _, _ in adminOK([("clock", Timestamp.format(millis: clock.nowMillis))]) }
    }

    private func adminHealth() -> APIResponse {
        let (tables, statements) = state.withLock { ($0.tables.count, $0.statements.count) }
        return adminOK(
            [("status", "ok"), ("clock", Timestamp.format(millis: clock.nowMillis))],
            ints: [("tables", tables), ("statements", statements)])
    }

    private func adminAddTable(_ req: APIRequest) -> APIResponse {
        do {
            let t = try JSONDecoder().decode(Table.self, from: Data(req.body))
            try addTable(t)
            return adminOK([("table", t.name)], ints: [("latest_version", latestVersion(table: t.name) ?? -1)])
        } catch let e as DecodingError {
            return adminError(400, "invalid table: \(Workspace.describe(e))")
        } catch {
            return adminError(409, "\(error)")
        }
    }

    /// What Databricks' system.query.history says about the result cache.
    private func adminStatement(_ id: String) -> APIResponse {
        guard let r = state.withLock({ $0.statements[id] }) else {
            return adminError(404, "no statement \(id)")
        }
        var w = JSONWriter()
        w.beginObject()
        w.key("statement_id")
        w.string(r.id)
        w.key("from_result_cache")
        w.bool(r.resultID != r.id)
        w.key("cache_origin_statement_id")
        if r.resultID != r.id { w.string(r.resultID) } else { w.null() }
        w.endObject()
        return APIResponse(status: 200, json: w.bytes)
    }

    private func adminTable(_ name: String) -> APIResponse {
        guard let v = latestVersion(table: name) else { return adminError(404, "no table \(name)") }
        return adminOK([("table", name)], ints: [("latest_version", v)])
    }

    private func adminDropTable(_ name: String) -> APIResponse {
        do {
            try dropTable(name)
        } catch {
            return adminError(404, "\(error)")
        }
        return adminOK([("table", name), ("dropped", "true")])
    }

    private func adminAppendCommit(_ name: String, _ req: APIRequest) -> APIResponse {
        let commit: Commit
        do {
            commit = try Commit.decode(Data(req.body))
        } catch {
            return adminError(400, "\(error)")
        }
        guard let latest = latestVersion(table: name) else { return adminError(404, "no table \(name)") }
        guard commit.version == latest + 1 else {
            return adminError(409, "commit version \(commit.version) must be latest + 1 = \(latest + 1)")
        }
        do {
            try appendCommit(table: name, commit)
        } catch {
            return adminError(400, "\(error)")
        }
        return adminOK([("table", name)], ints: [("version", commit.version)])
    }

    /// `{"table": name, "commits": [COMMIT, ...]}`: the shape of fixtures/demo-commits-2.json.
    private func adminAppendCommits(_ req: APIRequest) -> APIResponse {
        guard let obj = (try? JSONSerialization.jsonObject(with: Data(req.body))) as? [String: Any],
            let table = obj["table"] as? String, let list = obj["commits"] as? [Any]
        else { return adminError(400, "body must be {\"table\": \"c.s.t\", \"commits\": [COMMIT, ...]}") }
        var applied: [Int] = []
        for item in list {
            let commit: Commit
            do {
                commit = try Commit.decode(JSONSerialization.data(withJSONObject: item))
            } catch {
                return adminError(400, "\(error) (applied versions: \(applied))")
            }
            guard let latest = latestVersion(table: table) else { return adminError(404, "no table \(table)") }
            guard commit.version == latest + 1 else {
                return adminError(
                    409, "commit version \(commit.version) must be latest + 1 = \(latest + 1) (applied versions: \(applied))")
            }
            do {
                try appendCommit(table: table, commit)
            } catch {
                return adminError(400, "\(error) (applied versions: \(applied))")
            }
            applied.append(commit.version)
        }
        var w = JSONWriter()
        w.beginObject()
        w.key("table")
        w.string(table)
        w.key("versions")
        w.beginArray()
        for v in applied { w.int(Int64(v)) }
        w.endArray()
        w.endObject()
        return APIResponse(status: 200, json: w.bytes)
    }

    /// `{"earliest_retained_version": N, "error_class"?: CLASS}`: VACUUM, and how table_changes then fails.
    private func adminVacuum(_ name: String, _ req: APIRequest) -> APIResponse {
        let obj = (try? JSONSerialization.jsonObject(with: Data(req.body))) as? [String: Any]
        guard let obj, let v = (obj["earliest_retained_version"] as? NSNumber)?.intValue else {
            return adminError(400, "body must be {\"earliest_retained_version\": N, \"error_class\"?: CLASS}")
        }
        guard latestVersion(table: name) != nil else { return adminError(404, "no table \(name)") }
        do {
            try vacuum(table: name, earliestRetainedVersion: v, errorClass: obj["error_class"] as? String)
        } catch {
            return adminError(400, "\(error)")
        }
        return adminOK([("table", name)], ints: [("earliest_retained_version", v)])
    }

    private func adminSyntheticCommit(_ name: String, _ req: APIRequest) -> APIResponse {
        let body = req.body.isEmpty ? Array("{}".utf8) : req.body
        let obj = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
        guard let obj else { return adminError(400, "body must be a JSON object") }
        let uf = (obj["update_fraction"] as? NSNumber)?.doubleValue ?? 0.01
        let ins = (obj["insert_rows"] as? NSNumber)?.intValue ?? 0
        let df = (obj["delete_fraction"] as? NSNumber)?.doubleValue ?? 0
        guard latestVersion(table: name) != nil else { return adminError(404, "no table \(name)") }
        do {
            let v = try appendSyntheticCommit(
                table: name, updateFraction: uf, insertRows: ins, deleteFraction: df, timestamp: obj["timestamp"] as? String)
            return adminOK([("table", name)], ints: [("version", v)])
        } catch {
            return adminError(400, "\(error)")
        }
    }

    private func adminAddFault(_ req: APIRequest) -> APIResponse {
        do {
            let f = try JSONDecoder().decode(Fault.self, from: Data(req.body))
            let id = addFault(f)
            return adminOK([], ints: [("id", id)])
        } catch let e as DecodingError {
            return adminError(400, "invalid fault: \(Workspace.describe(e))")
        } catch {
            return adminError(400, "\(error)")
        }
    }

    private func adminWarehouseState(_ id: String, _ req: APIRequest) -> APIResponse {
        let obj = (try? JSONSerialization.jsonObject(with: Data(req.body))) as? [String: Any]
        guard let s = obj?["state"] as? String else {
            return adminError(400, "body must be {\"state\": \"RUNNING|STOPPED|STARTING|STOPPING\"}")
        }
        do {
            try setWarehouseState(id: id, state: s.uppercased())
        } catch {
            return adminError(400, "\(error)")
        }
        return adminOK([("id", id), ("state", s.uppercased())])
    }

    private func adminAdvanceClock(_ req: APIRequest) -> APIResponse {
        let obj = (try? JSONSerialization.jsonObject(with: Data(req.body))) as? [String: Any]
        guard let secs = (obj?["seconds"] as? NSNumber)?.doubleValue, secs >= 0 else {
            return adminError(400, "body must be {\"seconds\": N} with N >= 0")
        }
        clock.advance(seconds: secs)
        return adminOK([("clock", Timestamp.format(millis: clock.nowMillis))])
    }
}
