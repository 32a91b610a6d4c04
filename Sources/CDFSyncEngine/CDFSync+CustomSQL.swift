import CDFSyncClient
import CDFSyncCore
import Foundation

/// A custom SQL source (`source: {sql: …}`): what it returns, the columns the pipeline needs from it, and the mode.
///
/// The query itself is never sent alone: every statement wraps the guarded text as `FROM (<sql>) AS src`, with the
/// engine's own clauses outside it and its values bound as parameters (``SQL/customWatermarkPage(_:columns:cursor:key:cursorType:conditions:parameters:upperBound:after:pageSize:)``).
extension CDFSync {
    /// One column a custom SQL source returns.
    public struct SourceColumn: Sendable, Equatable {
        public var name: String
        /// The type as the warehouse describes it (`BIGINT`, `TIMESTAMP`, `DECIMAL(10,2)`).
        public var type: String

        public init(name: String, type: String) {
            self.name = name
            self.type = type
        }
    }

    /// One column the pipeline reads from its source, and whether (and how) the source has it.
    public struct ColumnCoverage: Sendable, Equatable {
        /// The pipeline field that names it (`mapping.email`, `attributes.tier`, `consent.column`, `watermark.column`,
        /// `filters[0].column`).
        public var field: String
        public var column: String
        /// The type the source returns it as; nil when the source has no such column.
        public var type: String?
        /// What is wrong (missing, ambiguous, a type the field cannot take), or nil.
        public var problem: String?

        public var ok: Bool { problem == nil }
    }

    /// The columns the custom SQL returns, with their types: its test-run statement with `LIMIT :n`, `n = 0` — the
    /// warehouse plans the wrapped query (names, types, permissions) and returns no row.
    public func customSourceColumns() throws -> [SourceColumn] {
        guard let custom = options.customSQL else { return [] }
        let probe = SQL.customTestRun(custom, limit: 0)
        let sink = CollectingSink(limit: 0)
        try client.execute(Statement(sql: probe.sql, parameters: probe.parameters.map(Self.statementParameter),
            disposition: .inline), sink: sink)
        return zip(sink.columns, sink.columnTypes).map { SourceColumn(name: $0, type: $1.uppercased()) }
    }

    static func statementParameter(_ p: BoundParameter) -> StatementParameter {
        StatementParameter(name: p.name, value: p.value, type: p.type)
    }

    /// `auto` for a custom SQL source: a query has no change data, so watermark when a cursor column is known, else
    /// snapshot. `mode: cdf` is refused (the loader refuses it first).
    static func customSQLMode(_ spec: Pipeline, cursor: Bool) throws -> ModeDecision {
        switch spec.mode {
        case .watermark: return ModeDecision(mode: .watermark)
        case .snapshot: return ModeDecision(mode: .snapshot)
        case .cdf:
            throw SyncError("mode: cdf, but the source is custom SQL, which has no change data feed",
                remedy: "Use mode: watermark (with a cursor column) or mode: snapshot.")
        case .auto:
            return ModeDecision(mode: cursor ? .watermark : .snapshot,
                reason: "custom SQL has no change data; \(cursor ? "a cursor column is mapped" : "no cursor column is mapped")")
        }
    }

    /// The cursor column of a watermark read (nil when none is named).
    static func cursorColumn(_ spec: Pipeline) -> String? { spec.watermark?.column ?? spec.mapping["last_updated"] }

    /// Every column `spec` reads, checked against what the source returns: present exactly once (a join can
    /// return two columns of one name, which no statement can then name), of a type the field can take; the
    /// watermark cursor (when `watermark`) a TIMESTAMP or DATE, which the keyset pages order and bound by.
    public static func coverage(of spec: Pipeline, in columns: [SourceColumn], watermark: Bool) -> [ColumnCoverage] {
        var out: [ColumnCoverage] = []
        func check(_ field: String, _ column: String, expect: [String]) {
            let found = columns.filter { $0.name.lowercased() == column.lowercased() }
            guard let first = found.first else {
                let names = columns.map(\.name).joined(separator: ", ")
                out.append(ColumnCoverage(field: field, column: column, type: nil,
                    problem: "column '\(column)' is not in the query's output (columns: \(names))"))
                return
            }
            if found.count > 1 {
                out.append(ColumnCoverage(field: field, column: column, type: first.type,
                    problem: "the query returns \(found.count) columns named '\(column)' (a join of two tables that "
                        + "both have it?): give each its own name with AS"))
            } else if !expect.isEmpty && !expect.contains(where: { first.type.hasPrefix($0) }) {
                out.append(ColumnCoverage(field: field, column: column, type: first.type,
                    problem: "column '\(column)' is \(first.type); expected \(expect.joined(separator: " or "))"))
            } else {
                out.append(ColumnCoverage(field: field, column: column, type: first.type, problem: nil))
            }
        }
        let time = ["TIMESTAMP", "DATE"]
        let fields = spec.kind == .participants ? Pipeline.participantFields : Pipeline.eventFields
        for field in fields {
            guard let column = spec.mapping[field] else { continue }
            check("mapping.\(field)", column, expect: ["last_updated", "timestamp"].contains(field) ? time : [])
        }
        for a in spec.attributes {
            let expect: [String] = switch a.type {
            case .integer: ["INT", "BIGINT", "SMALLINT", "TINYINT", "STRING", "DECIMAL"]
            case .boolean: ["BOOLEAN", "STRING", "INT"]
            case .date: ["DATE", "STRING", "TIMESTAMP"]
            case .timestamp: ["TIMESTAMP", "STRING"]
            default: []
            }
            check("attributes.\(a.outputName)", a.column, expect: expect)
        }
        if let c = spec.consent { check("consent.column", c.column ?? spec.mapping["consent_status"] ?? "", expect: []) }
        for (i, f) in spec.filters.enumerated() { check("filters[\(i)].column", f.column, expect: []) }
        // Without watermark.column the cursor is the last_updated mapping, checked as a time above.
        if let w = spec.watermark?.column { check("watermark.column", w, expect: watermark ? time : []) }
        return out
    }

    /// Before a custom SQL source is read: every column the pipeline reads is in the query's output, once, of a type
    /// the field takes; for a watermark read, the cursor is a TIMESTAMP or DATE.
    /// - Throws: `SyncError` naming each column that is not, with what the query returns.
    func checkCustomColumns(_ spec: Pipeline) throws {
        let columns = try customSourceColumns()
        let watermark = try decideMode().mode == .watermark
        if watermark, Self.cursorColumn(spec) == nil || spec.mapping["external_id"] == nil {
            throw SyncError("watermark mode needs a cursor column and an external_id mapping",
                remedy: "Set watermark.column (or map last_updated) and map external_id.")
        }
        let problems = Self.coverage(of: spec, in: columns, watermark: watermark).compactMap { c in
            c.problem.map { "\(c.field): \($0)" }
        }
        guard problems.isEmpty else {
            throw SyncError("the custom SQL does not return what the pipeline reads: " + problems.joined(separator: "; "),
                remedy: "Fix the mapping, or the query (`cdfsync pipeline test-sql` shows what it returns). Nothing "
                    + "was read or checkpointed.")
        }
    }

    /// `pipeline validate` of a custom SQL source: the query planned by the warehouse (`LIMIT 0`), every column the
    /// pipeline reads found in its output with a fitting type, and the mode.
    func validateCustomLive(_ spec: Pipeline) -> [ValidationFinding] {
        var out: [ValidationFinding] = []
        func add(_ f: String, _ ok: Bool, _ m: String) { out.append(ValidationFinding(field: f, ok: ok, message: m)) }
        let columns: [SourceColumn]
        do {
            columns = try customSourceColumns()
        } catch let e as DatabricksError where [.hostUnreachable, .tls, .authenticationFailed, .warehouseNotFound,
            .warehouseStopped, .warehouseStartTimeout, .configuration].contains(e.category)
        {
            add("connection", false, "\(e)")
            return out
        } catch {
            add("connection", true, "warehouse answered")
            add("source.sql", false, "the warehouse cannot run the query: \(error)")
            return out
        }
        add("connection", true, "warehouse answered")
        add("source.sql", true, "one read-only SELECT; it returns \(columns.count) column(s): "
            + columns.map { "\($0.name) \($0.type)" }.joined(separator: ", "))
        let decision: ModeDecision
        do {
            decision = try decideMode()
        } catch {
            add("mode", false, "\(error)")
            return out
        }
        for c in Self.coverage(of: spec, in: columns, watermark: decision.mode == .watermark) {
            add(c.field, c.ok, c.problem ?? "\(c.column) (\(c.type ?? ""))")
        }
        if decision.mode == .watermark {
            if let cursor = Self.cursorColumn(spec) {
                add("mode", true, "\(decision.description): keyset pages on (\(cursor), \(spec.mapping["external_id"] ?? "?"))")
            } else {
                add("mode", false, "watermark mode needs a cursor column — set watermark.column or map last_updated")
            }
        } else {
            add("mode", true, "\(decision.description): every run reads the whole query")
        }
        return out
    }
}
