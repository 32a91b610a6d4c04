import CDFSyncCore
import Foundation

/// What one table version looks like in DESCRIBE HISTORY and to table_changes.
struct VersionInfo: Sendable {
    var version: Int
    var timestampMillis: Int64
    var operation: String
    var userName: String
    /// Table properties in effect from this version on.
    var properties: [String: String]
    var insertCount: Int
    var updateCount: Int
    var deleteCount: Int
    /// The schema change this version made, if any.
    var alter: Commit.Alter? = nil

    /// Whether this version recorded change data.
    var cdfEnabled: Bool { properties["delta.enableChangeDataFeed"]?.lowercased() == "true" }
}

/// The columns of a table from one version on.
struct Schema: Sendable, Equatable {
    var from: Int
    var columns: [ColumnDef]
    var types: [SQLType]

    /// Spark's `StructType.json` of these columns, as Delta prints a read schema in errors.
    var json: String {
        var w = JSONWriter()
        w.beginObject()
        w.key("type"); w.string("struct")
        w.key("fields")
        w.beginArray()
        for (c, t) in zip(columns, types) { Self.writeField(c, t, to: &w) }
        w.endArray()
        w.endObject()
        return String(decoding: w.bytes, as: UTF8.self)
    }

    /// One column as Spark's `StructField` JSON (`name`, `type`, `nullable`, `metadata`).
    static func writeField(_ column: ColumnDef, _ type: SQLType, to w: inout JSONWriter) {
        w.beginObject()
        w.key("name"); w.string(column.name)
        w.key("type"); w.string(Executor.simpleTypeString(type))
        w.key("nullable"); w.bool(column.nullable)
        w.key("metadata"); w.beginObject(); w.endObject()
        w.endObject()
    }

    /// For each of these columns, its position among `source`'s columns by name (nil: not there); nil when every
    /// column is at its own position.
    func positions(in source: Schema) -> [Int?]? {
        let pick = columns.map { col in source.columns.firstIndex { $0.name == col.name } }
        let same = pick.count == source.columns.count && pick.enumerated().allSatisfy { $0.element == $0.offset }
        return same ? nil : pick
    }

    /// `row` (in a source schema) in the columns that `positions` picked, NULL where there is none.
    static func project(_ row: Row, _ positions: [Int?]) -> Row { positions.map { $0.map { row[$0] } ?? nil } }
}

/// The running state of one table: its definition, version list and data.
struct TableState: Sendable {
    var name: TableName
    var tableType: String
    /// Every schema the table had, oldest first: `from` is the version that set it (0 for the creation schema).
    var schemas: [Schema]
    var earliestRetainedVersion: Int
    /// What `table_changes` from below `earliestRetainedVersion` fails with (see ``VacuumError``).
    var vacuumErrorClass = "DELTA_VERSION_NOT_FOUND"
    var view: ViewDef?
    var comment: String?
    var versions: [VersionInfo] = []
    /// Commits of a fixture table (empty for synthetic tables and views).
    var commits: [Commit] = []
    /// The rows at the latest version (fixture tables only).
    var latestRows: [Row] = []
    var synthetic: SyntheticTable?

    static let defaultUser = "sync-admin@example.com"

    init(_ def: Table) throws {
        name = try TableName(parsing: def.name)
        tableType = def.tableType
        schemas = [Schema(from: 0, columns: def.columns, types: try def.columns.map { try SQLType(parsing: $0.type) })]
        earliestRetainedVersion = def.earliestRetainedVersion
        if let c = def.vacuumErrorClass { vacuumErrorClass = c }
        view = def.view
        comment = def.comment
        if let spec = def.synthetic {
            let s = try SyntheticTable(spec: spec)
            synthetic = s
            versions = s.versionInfos
        } else {
            for c in def.commits { try append(c) }
        }
    }

    /// The columns at the latest version.
    var columns: [ColumnDef] { schemas[schemas.count - 1].columns }
    var columnTypes: [SQLType] { schemas[schemas.count - 1].types }

    var isView: Bool { tableType == "VIEW" }
    var isDelta: Bool { tableType != "VIEW" }
    var latestVersion: Int { versions.count - 1 }
    var properties: [String: String] { versions.last?.properties ?? [:] }

    /// Checks row widths and NOT NULL columns of a commit.
    static func checkCommitShape(_ c: Commit, columns: [ColumnDef], table: String) throws {
        func check(_ row: Row, _ what: String) throws {
            guard row.count == columns.count else {
                throw WorkspaceError(
                    "table \(table) commit \(c.version): \(what) row has \(row.count) values, the table has \(columns.count) columns")
            }
            for (v, col) in zip(row, columns) where v == nil && !col.nullable {
                throw WorkspaceError("table \(table) commit \(c.version): \(what) row has NULL in NOT NULL column \(col.name)")
            }
        }
        for r in c.insert ?? [] { try check(r, "insert") }
        for u in c.update ?? [] {
            try check(u.before, "update before")
            try check(u.after, "update after")
        }
        for r in c.delete ?? [] { try check(r, "delete") }
    }

    /// Appends a commit to a fixture table (version must be latest + 1, timestamps increasing).
    mutating func append(_ c: Commit) throws {
        guard synthetic == nil else { throw WorkspaceError("table \(name) is synthetic; use synthetic-commit") }
        guard !isView else { throw WorkspaceError("\(name) is a view; views have no commits") }
        guard c.version == versions.count else {
            throw WorkspaceError("table \(name): commit version \(c.version) must be latest + 1 = \(versions.count)")
        }
        let ts = try Timestamp.parseMillis(c.timestamp)
        if let last = versions.last, ts <= last.timestampMillis {
            throw WorkspaceError("table \(name): commit \(c.version) timestamp must be after \(Timestamp.format(millis: last.timestampMillis))")
        }
        var props = versions.last?.properties ?? [:]
        for (k, v) in c.setProperties ?? [:] { props[k] = v }
        var rows = latestRows
        var schema = schemas.last!
        if let alter = c.alter {
            schema = try Self.altered(schema, by: alter, commit: c, properties: props, table: name.description)
            Self.reshape(&rows, from: schemas.last!, to: schema)
        } else {
            try Self.checkCommitShape(c, columns: columns, table: name.description)
            try Self.apply(c, to: &rows, table: name.description)
        }
        versions.append(
            VersionInfo(
                version: c.version, timestampMillis: ts, operation: c.operation,
                userName: c.userName ?? Self.defaultUser, properties: props,
                insertCount: c.insert?.count ?? 0, updateCount: c.update?.count ?? 0,
                deleteCount: c.delete?.count ?? 0, alter: c.alter))
        commits.append(c)
        latestRows = rows
        if c.alter != nil { schemas.append(schema) }
    }

    static func apply(_ c: Commit, to rows: inout [Row], table: String) throws {
        guard c.alter == nil else { return }
        for u in c.update ?? [] {
            guard let i = rows.firstIndex(of: u.before) else {
                throw WorkspaceError("table \(table) commit \(c.version): update before-row is not in the table: \(u.before)")
            }
            rows[i] = u.after
        }
        for d in c.delete ?? [] {
            guard let i = rows.firstIndex(of: d) else {
                throw WorkspaceError("table \(table) commit \(c.version): deleted row is not in the table: \(d)")
            }
            rows.remove(at: i)
        }
        rows.append(contentsOf: c.insert ?? [])
    }

    /// The rows at version `v` (a valid version), table columns only.
    func snapshot(at v: Int) -> any RowSource {
        if let s = synthetic { return s.snapshotSource(version: v) }
        if v == latestVersion { return MaterializedRows(rows: latestRows) }
        var rows: [Row] = []
        for c in commits.prefix(v + 1) {
            if c.alter != nil {
                Self.reshape(&rows, from: schema(at: c.version - 1), to: schema(at: c.version))
            } else {
                try? Self.apply(c, to: &rows, table: name.description)
            }
        }
        return MaterializedRows(rows: rows)
    }

    /// Change rows for versions `from...to` (valid, CDF-enabled, no schema break after `from`) in the columns of
    /// `read` (a column a version did not have yet reads NULL), then `_change_type`, `_commit_version`,
    /// `_commit_timestamp`, ordered by version.
    func changes(from: Int, to: Int, read: Schema) -> any RowSource {
        if let s = synthetic { return s.changesSource(from: from, to: to) }
        var out: [Row] = []
        guard from <= to else { return MaterializedRows(rows: out) }
        for v in from...to {
            let c = commits[v]
            let ver = String(v)
            let ts = Timestamp.format(millis: versions[v].timestampMillis)
            // Within a readable range only added columns differ: match by name.
            let pick = read.positions(in: schema(at: v))
            func image(_ r: Row) -> Row { pick.map { Schema.project(r, $0) } ?? r }
            for r in c.insert ?? [] { out.append(image(r) + ["insert", ver, ts]) }
            for u in c.update ?? [] {
                out.append(image(u.before) + ["update_preimage", ver, ts])
                out.append(image(u.after) + ["update_postimage", ver, ts])
            }
            for r in c.delete ?? [] { out.append(image(r) + ["delete", ver, ts]) }
        }
        return MaterializedRows(rows: out)
    }
}
