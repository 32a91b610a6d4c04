import CDFSyncCore
import Foundation

/// The admin interface under `/_sim/` (not part of the Databricks API), authenticated with the admin token.
extension Simulator {
    private func adminError(_ status: Int, _ message: String) -> HTTPResponse {
        var w = JSONWriter()
        w.beginObject()
        w.key("error")
        w.string(message)
        w.endObject()
        return HTTPResponse(status: status, json: w.bytes)
    }

    private func adminOK(_ fields: [(String, String)], ints: [(String, Int)] = []) -> HTTPResponse {
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
        return HTTPResponse(status: 200, json: w.bytes)
    }

    func admin(_ req: HTTPRequest) -> HTTPResponse {
        guard bearerToken(req) == configuration.adminToken else {
            return adminError(401, "the admin interface needs Authorization: Bearer <admin token>")
        }
        let segs = req.path.split(separator: "/").map { String($0).removingPercentEncoding ?? String($0) }
        // segs[0] == "_sim"
        let rest = Array(segs.dropFirst())
        switch (req.method, rest.first, rest.count) {
        case ("GET", "hooks", 2):
            return webhookAdmin(rest[1])
        case ("GET", "health", 1):
            let (tables, statements) = state.withLock { ($0.tables.count, $0.statements.count) }
            return adminOK(
                [("status", "ok"), ("clock", Timestamp.format(millis: clock.nowMillis))],
                ints: [("tables", tables), ("statements", statements)])
        case ("POST", "tables", 1):
            do {
                let t = try JSONDecoder().decode(Table.self, from: Data(req.body))
                try addTable(t)
                return adminOK([("table", t.name)], ints: [("latest_version", latestVersion(table: t.name) ?? -1)])
            } catch let e as DecodingError {
                return adminError(400, "invalid table: \(Workspace.describe(e))")
            } catch {
                return adminError(409, "\(error)")
            }
        case ("GET", "statements", 2):
            // What Databricks' system.query.history says about the result cache.
            guard let r = state.withLock({ $0.statements[rest[1]] }) else {
                return adminError(404, "no statement \(rest[1])")
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
            return HTTPResponse(status: 200, json: w.bytes)
        case ("GET", "tables", 2):
            guard let v = latestVersion(table: rest[1]) else { return adminError(404, "no table \(rest[1])") }
            return adminOK([("table", rest[1])], ints: [("latest_version", v)])
        case ("DELETE", "tables", 2):
            do {
                try dropTable(rest[1])
            } catch {
                return adminError(404, "\(error)")
            }
            return adminOK([("table", rest[1]), ("dropped", "true")])
        case ("POST", "tables", 3) where rest[2] == "commits":
            let commit: Commit
            do {
                commit = try Commit.decode(Data(req.body))
            } catch {
                return adminError(400, "\(error)")
            }
            guard let latest = latestVersion(table: rest[1]) else { return adminError(404, "no table \(rest[1])") }
            guard commit.version == latest + 1 else {
                return adminError(409, "commit version \(commit.version) must be latest + 1 = \(latest + 1)")
            }
            do {
                try appendCommit(table: rest[1], commit)
            } catch {
                return adminError(400, "\(error)")
            }
            return adminOK([("table", rest[1])], ints: [("version", commit.version)])
        case ("POST", "commits", 1):
            // {"table": name, "commits": [COMMIT, ...]}: the shape of fixtures/demo-commits-2.json.
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
                    return adminError(409, "commit version \(commit.version) must be latest + 1 = \(latest + 1) (applied versions: \(applied))")
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
            return HTTPResponse(status: 200, json: w.bytes)
        case ("POST", "tables", 3) where rest[2] == "vacuum":
            // {"earliest_retained_version": N, "error_class"?: CLASS}: VACUUM, and how table_changes then fails.
            let obj = (try? JSONSerialization.jsonObject(with: Data(req.body))) as? [String: Any]
            guard let obj, let v = (obj["earliest_retained_version"] as? NSNumber)?.intValue else {
                return adminError(400, "body must be {\"earliest_retained_version\": N, \"error_class\"?: CLASS}")
            }
            guard latestVersion(table: rest[1]) != nil else { return adminError(404, "no table \(rest[1])") }
            do {
                try vacuum(table: rest[1], earliestRetainedVersion: v, errorClass: obj["error_class"] as? String)
            } catch {
                return adminError(400, "\(error)")
            }
            return adminOK([("table", rest[1])], ints: [("earliest_retained_version", v)])
        case ("POST", "tables", 3) where rest[2] == "synthetic-commit":
            let obj = (try? JSONSerialization.jsonObject(with: Data(req.body.isEmpty ? Array("{}".utf8) : req.body))) as? [String: Any]
            guard let obj else { return adminError(400, "body must be a JSON object") }
            let uf = (obj["update_fraction"] as? NSNumber)?.doubleValue ?? 0.01
            let ins = (obj["insert_rows"] as? NSNumber)?.intValue ?? 0
            let df = (obj["delete_fraction"] as? NSNumber)?.doubleValue ?? 0
            guard latestVersion(table: rest[1]) != nil else { return adminError(404, "no table \(rest[1])") }
            do {
                let v = try appendSyntheticCommit(
                    table: rest[1], updateFraction: uf, insertRows: ins, deleteFraction: df, timestamp: obj["timestamp"] as? String)
                return adminOK([("table", rest[1])], ints: [("version", v)])
            } catch {
                return adminError(400, "\(error)")
            }
        case ("POST", "faults", 1):
            do {
                let f = try JSONDecoder().decode(Fault.self, from: Data(req.body))
                guard Fault.kinds.contains(f.kind) else {
                    return adminError(400, "unknown fault kind \(f.kind); one of \(Fault.kinds.sorted().joined(separator: ", "))")
                }
                let id = addFault(f)
                return adminOK([], ints: [("id", id)])
            } catch let e as DecodingError {
                return adminError(400, "invalid fault: \(Workspace.describe(e))")
            } catch {
                return adminError(400, "\(error)")
            }
        case ("DELETE", "faults", 1):
            clearFaults()
            return adminOK([])
        case ("GET", "faults", 1):
            let faults = state.withLock { $0.faults }
            let data = (try? JSONEncoder().encode(faults)) ?? Data("[]".utf8)
            return HTTPResponse(status: 200, json: Array(data))
        case ("POST", "warehouses", 3) where rest[2] == "state":
            let obj = (try? JSONSerialization.jsonObject(with: Data(req.body))) as? [String: Any]
            guard let s = obj?["state"] as? String else { return adminError(400, "body must be {\"state\": \"RUNNING|STOPPED|STARTING|STOPPING\"}") }
            do {
                try setWarehouseState(id: rest[1], state: s.uppercased())
            } catch {
                return adminError(400, "\(error)")
            }
            return adminOK([("id", rest[1]), ("state", s.uppercased())])
        case ("POST", "clock", 2) where rest[1] == "advance":
            let obj = (try? JSONSerialization.jsonObject(with: Data(req.body))) as? [String: Any]
            guard let secs = (obj?["seconds"] as? NSNumber)?.doubleValue, secs >= 0 else {
                return adminError(400, "body must be {\"seconds\": N} with N >= 0")
            }
            clock.advance(seconds: secs)
            return adminOK([("clock", Timestamp.format(millis: clock.nowMillis))])
        case ("GET", "clock", 1):
            return adminOK([("clock", Timestamp.format(millis: clock.nowMillis))])
        default:
            return adminError(404, "no admin endpoint \(req.method) \(req.path)")
        }
    }
}
