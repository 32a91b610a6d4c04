import CDFSyncClient
import CDFSyncCore
import Foundation

/// One line of `cdfsync pipeline validate`: a field, whether it is right, and what to do if not.
public struct ValidationFinding: Sendable, Equatable {
    public var field: String
    public var ok: Bool
    public var message: String

    public init(field: String, ok: Bool, message: String) {
        self.field = field
        self.ok = ok
        self.message = message
    }
}

extension CDFSync {
    /// Checks a pipeline against the live source: visibility, every referenced column and its type, and whether
    /// the mode can work. Never reads data beyond metadata.
    public func validateLive() -> [ValidationFinding] {
        guard let spec = options.spec else { return [] }
        if options.customSQL != nil { return validateCustomLive(spec) }
        var out: [ValidationFinding] = []
        func add(_ f: String, _ ok: Bool, _ m: String) { out.append(ValidationFinding(field: f, ok: ok, message: m)) }
        let type: String?
        do {
            type = try tableType()
        } catch {
            add("connection", false, "\(error)")
            return out
        }
        add("connection", true, "warehouse answered")
        guard let type else {
            add("source", false, "\(spec.source) is not visible to this identity — check the name and USE CATALOG / USE SCHEMA / SELECT grants")
            return out
        }
        add("source", true, "\(spec.source) (\(type))")
        let columns: [String: String]
        do {
            let sink = CollectingSink()
            let t = options.table
            try client.execute(Statement(
                sql: "SELECT column_name, full_data_type FROM \(SQL.quoteIdentifier(t.catalog)).information_schema.columns WHERE lower(table_schema) = :sch AND lower(table_name) = :tbl",
                parameters: [StatementParameter(name: "sch", value: t.schema.lowercased()), StatementParameter(name: "tbl", value: t.table.lowercased())]),
                sink: sink)
            columns = Dictionary(sink.rows.compactMap { r in (r.first ?? nil).map { ($0.lowercased(), ((r.count > 1 ? r[1] : nil) ?? "").uppercased()) } },
                uniquingKeysWith: { a, _ in a })
        } catch {
            add("source", false, "cannot list columns: \(error)")
            return out
        }
        // What the table's history says happened to a column that is not there (read once, when needed).
        var schemaHistory: SchemaHistory??
        func fate(_ column: String) -> String {
            if schemaHistory == nil {
                schemaHistory = .some(type.uppercased().contains("VIEW") ? nil
                    : (try? history(limit: options.historyLimit)).map(SchemaHistory.init(history:)))
            }
            guard case .some(.some(let h)) = schemaHistory else { return "" }
            switch h.fate(of: column, exists: { columns[$0.lowercased()] != nil }) {
            case .renamed(let to, let v): return " — it was renamed to \(to) at version \(v): map \(to)"
            case .dropped(let v): return " — it was dropped at version \(v)"
            case nil: return ""
            }
        }
        func check(_ field: String, _ column: String, expect: [String] = []) {
            guard let t = columns[column.lowercased()] else {
                add(field, false, "column '\(column)' does not exist in \(spec.source)\(fate(column))")
                return
            }
            if !expect.isEmpty && !expect.contains(where: { t.hasPrefix($0) }) {
                add(field, false, "column '\(column)' is \(t); expected \(expect.joined(separator: " or "))")
            } else {
                add(field, true, "\(column) (\(t))")
            }
        }
        for (field, column) in spec.mapping.sorted(by: { $0.key < $1.key }) {
            let expect: [String]
            switch field {
            case "last_updated", "timestamp": expect = ["TIMESTAMP", "DATE"]
            default: expect = []
            }
            check("mapping.\(field)", column, expect: expect)
        }
        for a in spec.attributes {
            let expect: [String]
            switch a.type {
            case .integer: expect = ["INT", "BIGINT", "SMALLINT", "TINYINT", "STRING", "DECIMAL"]
            case .boolean: expect = ["BOOLEAN", "STRING", "INT"]
            case .date: expect = ["DATE", "STRING", "TIMESTAMP"]
            case .timestamp: expect = ["TIMESTAMP", "STRING"]
            default: expect = []
            }
            check("attributes.\(a.outputName)", a.column, expect: expect)
        }
        if let c = spec.consent { check("consent.column", c.column ?? spec.mapping["consent_status"] ?? "") }
        for (i, f) in spec.filters.enumerated() { check("filters[\(i)].column", f.column) }
        if let w = spec.watermark?.column { check("watermark.column", w, expect: ["TIMESTAMP", "DATE"]) }
        /// A first sync's start version against the table's versions (what the sync itself would refuse).
        func checkStart() throws {
            guard case .version(let v) = spec.start else { return }
            let latest = try latestVersion()
            if v <= latest.saturatingAdd(1) {
                add("start", true, "v\(v) (latest is v\(latest)\(v == latest.saturatingAdd(1) ? "; starts with the next commit" : ""))")
            } else {
                add("start", false, "v\(v) is after the latest version of \(spec.source), v\(latest) — use \(latest) or lower")
            }
        }
        // The decision the sync makes, from the same function: an explicit mode that cannot work fails both.
        do {
            let decision = try decideMode()
            add("mode", true, decision.description)
            if decision.mode == .cdf { try checkStart() }
        } catch let e as SyncError {
            // The line already names the field: "✗ mode: cdf, but …", not "✗ mode: mode: cdf, but …".
            let message = e.message.hasPrefix("mode: ") ? String(e.message.dropFirst("mode: ".count)) : e.message
            add("mode", false, "\(message) — \(e.remedy)")
        } catch {
            add("mode", false, "cannot read table properties: \(error)")
        }
        return out
    }
}
