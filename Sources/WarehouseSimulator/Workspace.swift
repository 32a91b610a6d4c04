import Foundation

/// A workspace document in the `cdfsync-sim/1` format (docs/simulator.md, "The workspace document").
///
/// The document is a public contract: keys are only ever added. The simulator's own extensions are
/// `synthetic` on a TABLE and `default_catalog` / `default_schema` on the document.
public struct Workspace: Sendable, Codable {
    /// Always `cdfsync-sim/1`.
    public var format: String
    public var warehouses: [Warehouse]
    public var principals: [Principal]
    public var tables: [Table]
    /// Catalog used for unqualified names when the request names none (extension; default `main`).
    public var defaultCatalog: String?
    /// Schema used for unqualified names when the request names none (extension; default `default`).
    public var defaultSchema: String?

    enum CodingKeys: String, CodingKey {
        case format, warehouses, principals, tables
        case defaultCatalog = "default_catalog"
        case defaultSchema = "default_schema"
    }

    public init(
        warehouses: [Warehouse] = [], principals: [Principal] = [], tables: [Table] = [],
        defaultCatalog: String? = nil, defaultSchema: String? = nil
    ) {
        self.format = "cdfsync-sim/1"
        self.warehouses = warehouses
        self.principals = principals
        self.tables = tables
        self.defaultCatalog = defaultCatalog
        self.defaultSchema = defaultSchema
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        format = try c.decode(String.self, forKey: .format)
        warehouses = try c.decodeIfPresent([Warehouse].self, forKey: .warehouses) ?? []
        principals = try c.decodeIfPresent([Principal].self, forKey: .principals) ?? []
        tables = try c.decodeIfPresent([Table].self, forKey: .tables) ?? []
        defaultCatalog = try c.decodeIfPresent(String.self, forKey: .defaultCatalog)
        defaultSchema = try c.decodeIfPresent(String.self, forKey: .defaultSchema)
    }

    /// Loads and validates a document from a file.
    public static func load(path: String) throws -> Workspace {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw WorkspaceError("cannot read workspace file \(path): \(error.localizedDescription)")
        }
        return try load(data: data)
    }

    /// Decodes and validates a document.
    public static func load(data: Data) throws -> Workspace {
        let ws: Workspace
        do {
            ws = try JSONDecoder().decode(Workspace.self, from: data)
        } catch let error as DecodingError {
            throw WorkspaceError("invalid workspace document: \(describe(error))")
        }
        try ws.validate()
        return ws
    }

    /// Checks the invariants the spec states (format, versions, row widths, references).
    public func validate() throws {
        guard format == "cdfsync-sim/1" else {
            throw WorkspaceError("unsupported format \"\(format)\" (expected \"cdfsync-sim/1\")")
        }
        var names = Set<String>()
        for t in tables {
            let name = try TableName(parsing: t.name)
            guard names.insert(name.key).inserted else { throw WorkspaceError("duplicate table \(t.name)") }
            try t.validate()
        }
        var ids = Set<String>()
        for w in warehouses {
            guard ids.insert(w.id).inserted else { throw WorkspaceError("duplicate warehouse \(w.id)") }
            guard ["RUNNING", "STOPPED"].contains(w.state) else {
                throw WorkspaceError("warehouse \(w.id): state must be RUNNING or STOPPED, not \(w.state)")
            }
        }
        for t in tables where t.tableType == "VIEW" {
            guard let v = t.view else { throw WorkspaceError("view \(t.name) has no \"view\" definition") }
            let src = try TableName(parsing: v.source)
            guard tables.contains(where: { (try? TableName(parsing: $0.name))?.key == src.key }) else {
                throw WorkspaceError("view \(t.name): source \(v.source) is not a table in the document")
            }
        }
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ p: [any CodingKey]) -> String {
            p.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
        }
        switch error {
        case .typeMismatch(_, let c): return "\(path(c.codingPath)): \(c.debugDescription)"
        case .valueNotFound(_, let c): return "\(path(c.codingPath)): \(c.debugDescription)"
        case .keyNotFound(let k, let c): return "\(path(c.codingPath)): missing key \"\(k.stringValue)\""
        case .dataCorrupted(let c): return "\(path(c.codingPath)): \(c.debugDescription)"
        @unknown default: return "\(error)"
        }
    }
}

/// A problem with a workspace document or an admin request body.
public struct WorkspaceError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A SQL warehouse of the document.
public struct Warehouse: Sendable, Codable {
    /// 16 hex characters, e.g. `8a1c2f3d4e5b6a70`.
    public var id: String
    public var name: String
    /// `RUNNING` or `STOPPED` in a document.
    public var state: String
    /// Seconds a stopped warehouse takes to start.
    public var startSeconds: Double?
    /// Seconds a running warehouse takes to stop (extension; default 1).
    public var stopSeconds: Double?

    enum CodingKeys: String, CodingKey {
        case id, name, state
        case startSeconds = "start_seconds"
        case stopSeconds = "stop_seconds"
    }

    public init(id: String, name: String, state: String = "RUNNING", startSeconds: Double? = nil) {
        self.id = id
        self.name = name
        self.state = state
        self.startSeconds = startSeconds
    }
}

/// A user or service principal: PATs, an OAuth M2M client, warehouse permissions, Unity Catalog grants.
public struct Principal: Sendable, Codable {
    /// Client credentials for `POST /oidc/v1/token`.
    public struct OAuth: Sendable, Codable {
        public var clientID: String
        public var clientSecret: String
        enum CodingKeys: String, CodingKey {
            case clientID = "client_id"
            case clientSecret = "client_secret"
        }
        public init(clientID: String, clientSecret: String) {
            self.clientID = clientID
            self.clientSecret = clientSecret
        }
    }

    /// Privileges on a catalog, `catalog.schema` or `catalog.schema.table`.
    public struct Grant: Sendable, Codable {
        public var on: String
        public var privileges: [String]
        public init(on: String, privileges: [String]) {
            self.on = on
            self.privileges = privileges
        }
    }

    public var name: String
    /// Personal access tokens (`Authorization: Bearer <token>`).
    public var tokens: [String]
    public var oauth: OAuth?
    /// Warehouse id → permission (`CAN_USE`, `CAN_MANAGE`, `IS_OWNER`).
    public var warehouses: [String: String]
    public var grants: [Grant]

    public init(
        name: String, tokens: [String] = [], oauth: OAuth? = nil, warehouses: [String: String] = [:],
        grants: [Grant] = []
    ) {
        self.name = name
        self.tokens = tokens
        self.oauth = oauth
        self.warehouses = warehouses
        self.grants = grants
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        tokens = try c.decodeIfPresent([String].self, forKey: .tokens) ?? []
        oauth = try c.decodeIfPresent(OAuth.self, forKey: .oauth)
        warehouses = try c.decodeIfPresent([String: String].self, forKey: .warehouses) ?? [:]
        grants = try c.decodeIfPresent([Grant].self, forKey: .grants) ?? []
    }
}

/// One column of a table: name, Databricks type text, nullability.
public struct ColumnDef: Sendable, Codable, Hashable {
    public var name: String
    public var type: String
    public var nullable: Bool
    public var comment: String?

    public init(name: String, type: String, nullable: Bool = true, comment: String? = nil) {
        self.name = name
        self.type = type
        self.nullable = nullable
        self.comment = comment
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        type = try c.decode(String.self, forKey: .type)
        nullable = try c.decodeIfPresent(Bool.self, forKey: .nullable) ?? true
        comment = try c.decodeIfPresent(String.self, forKey: .comment)
    }
}

/// A row in JSON_ARRAY encoding: one `String?` per column, in column order.
public typealias Row = [String?]

/// One Delta commit, as in the fixture and in the admin commit body.
/// One Delta commit, as in the fixture and in the admin commit body.
public struct Commit: Sendable, Codable {
    /// An updated row: its image before and after.
    public struct Update: Sendable, Codable {
        public var before: Row
        public var after: Row
        public init(before: Row, after: Row) {
            self.before = before
            self.after = after
        }
    }

    /// latest + 1 (0 for the first commit).
    public var version: Int
    /// ISO-8601; increases with the version.
    public var timestamp: String
    /// DESCRIBE HISTORY's `operation` (`CREATE TABLE`, `WRITE`, `MERGE`, `UPDATE`, `DELETE`, ...).
    public var operation: String
    /// Table properties set from this version on (`delta.enableChangeDataFeed`).
    public var setProperties: [String: String]?
    public var insert: [Row]?
    public var update: [Update]?
    /// Rows removed; each removes one equal row.
    public var delete: [Row]?
    /// Shown as `userName` in DESCRIBE HISTORY (extension; default `sync-admin@example.com`).
    public var userName: String?
    /// A schema change (extension): the commit changes the table's columns and carries no rows.
    public var alter: Alter?

    /// One `ALTER TABLE` column change. Exactly one member is set; the commit's `operation` must be Delta's name for
    /// it (`ADD COLUMNS`, `RENAME COLUMN`, `DROP COLUMNS`, `CHANGE COLUMN`).
    public struct Alter: Sendable, Codable, Equatable {
        public struct Rename: Sendable, Codable, Equatable {
            public var from: String
            public var to: String
            public init(from: String, to: String) {
                self.from = from
                self.to = to
            }
        }

        public struct TypeChange: Sendable, Codable, Equatable {
            public var name: String
            public var type: String
            public init(name: String, type: String) {
                self.name = name
                self.type = type
            }
        }

        /// Appended at the end, nullable; rows written before read NULL in them.
        public var addColumns: [ColumnDef]?
        /// Needs column mapping (`delta.columnMapping.mode` `name` or `id`).
        public var renameColumn: Rename?
        /// Needs column mapping.
        public var dropColumns: [String]?
        /// A widening (`tinyint` → `smallint` → `int` → `bigint`, `float` → `double`); needs `delta.enableTypeWidening`.
        public var changeColumnType: TypeChange?

        enum CodingKeys: String, CodingKey {
            case addColumns = "add_columns"
            case renameColumn = "rename_column"
            case dropColumns = "drop_columns"
            case changeColumnType = "change_column_type"
        }

        public init(addColumns: [ColumnDef]? = nil, renameColumn: Rename? = nil, dropColumns: [String]? = nil,
                    changeColumnType: TypeChange? = nil) {
            self.addColumns = addColumns
            self.renameColumn = renameColumn
            self.dropColumns = dropColumns
            self.changeColumnType = changeColumnType
        }

        /// DESCRIBE HISTORY's `operation` for this change.
        public var operation: String {
            if addColumns != nil { return "ADD COLUMNS" }
            if renameColumn != nil { return "RENAME COLUMN" }
            if dropColumns != nil { return "DROP COLUMNS" }
            return "CHANGE COLUMN"
        }

        /// Whether change data cannot be read across it (Delta refuses a `table_changes` range that spans a rename,
        /// a drop or a type change with `DELTA_CHANGE_DATA_FEED_INCOMPATIBLE_SCHEMA_CHANGE`); added columns are read
        /// as NULL in older rows.
        public var breaksChangeFeed: Bool { addColumns == nil }
    }

    enum CodingKeys: String, CodingKey {
        case version, timestamp, operation, insert, update, delete, alter
        case setProperties = "set_properties"
        case userName = "user_name"
    }

    public init(
        version: Int, timestamp: String, operation: String, setProperties: [String: String]? = nil,
        insert: [Row]? = nil, update: [Update]? = nil, delete: [Row]? = nil, alter: Alter? = nil
    ) {
        self.alter = alter
        self.version = version
        self.timestamp = timestamp
        self.operation = operation
        self.setProperties = setProperties
        self.insert = insert
        self.update = update
        self.delete = delete
    }

    /// Decodes one COMMIT from JSON.
    public static func decode(_ data: Data) throws -> Commit {
        do {
            return try JSONDecoder().decode(Commit.self, from: data)
        } catch let error as DecodingError {
            throw WorkspaceError("invalid commit: \(Workspace.describe(error))")
        }
    }
}

/// The view definition of a `VIEW` table.
public struct ViewDef: Sendable, Codable {
    public var source: String
    /// Select items: a column name, or `column AS alias`.
    public var select: [String]
    /// A filter in the simulator's SQL expression syntax.
    public var `where`: String?

    public init(source: String, select: [String], where filter: String? = nil) {
        self.source = source
        self.select = select
        self.where = filter
    }
}

/// Parameters of a synthetic table (extension; see docs/simulator.md).
public struct SyntheticSpec: Sendable, Codable, Hashable {
    public var seed: UInt64
    /// Rows inserted by v1.
    public var rows: Int
    /// Fraction of rows each generated update version touches.
    public var updateFraction: Double
    /// Number of update versions generated after the initial load (v2, v3, ...).
    public var updateVersions: Int
    /// Timestamp of v0; each later version is one minute after the previous one.
    public var startTimestamp: String?

    enum CodingKeys: String, CodingKey {
        case seed, rows
        case updateFraction = "update_fraction"
        case updateVersions = "update_versions"
        case startTimestamp = "start_timestamp"
    }

    public init(
        seed: UInt64 = 42, rows: Int, updateFraction: Double = 0.01, updateVersions: Int = 0,
        startTimestamp: String? = nil
    ) {
        self.seed = seed
        self.rows = rows
        self.updateFraction = updateFraction
        self.updateVersions = updateVersions
        self.startTimestamp = startTimestamp
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? 42
        rows = try c.decode(Int.self, forKey: .rows)
        updateFraction = try c.decodeIfPresent(Double.self, forKey: .updateFraction) ?? 0.01
        updateVersions = try c.decodeIfPresent(Int.self, forKey: .updateVersions) ?? 0
        startTimestamp = try c.decodeIfPresent(String.self, forKey: .startTimestamp)
    }
}

/// A TABLE entry of the document.
public struct Table: Sendable, Codable {
    /// `catalog.schema.table`, parts optionally backtick-quoted.
    public var name: String
    /// `MANAGED`, `EXTERNAL`, `VIEW`, `MATERIALIZED_VIEW` or `STREAMING_TABLE`.
    public var tableType: String
    /// Columns; for a synthetic table they may be left out (the participant-panel columns are used).
    public var columns: [ColumnDef]
    public var commits: [Commit]
    /// Versions below it are vacuumed: `VERSION AS OF` and table_changes there fail.
    public var earliestRetainedVersion: Int
    /// The error class `table_changes` from a vacuumed version fails with (default `DELTA_VERSION_NOT_FOUND`).
    public var vacuumErrorClass: String?
    public var view: ViewDef?
    public var synthetic: SyntheticSpec?
    public var comment: String?

    enum CodingKeys: String, CodingKey {
        case name, columns, commits, view, synthetic, comment
        case tableType = "table_type"
        case earliestRetainedVersion = "earliest_retained_version"
        case vacuumErrorClass = "vacuum_error_class"
    }

    public init(
        name: String, tableType: String = "MANAGED", columns: [ColumnDef], commits: [Commit] = [],
        earliestRetainedVersion: Int = 0, view: ViewDef? = nil, synthetic: SyntheticSpec? = nil,
        vacuumErrorClass: String? = nil
    ) {
        self.vacuumErrorClass = vacuumErrorClass
        self.name = name
        self.tableType = tableType
        self.columns = columns.isEmpty && synthetic != nil ? SyntheticTable.columns : columns
        self.commits = commits
        self.earliestRetainedVersion = earliestRetainedVersion
        self.view = view
        self.synthetic = synthetic
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        tableType = try c.decodeIfPresent(String.self, forKey: .tableType) ?? "MANAGED"
        synthetic = try c.decodeIfPresent(SyntheticSpec.self, forKey: .synthetic)
        columns =
            try c.decodeIfPresent([ColumnDef].self, forKey: .columns)
            ?? (synthetic != nil ? SyntheticTable.columns : [])
        commits = try c.decodeIfPresent([Commit].self, forKey: .commits) ?? []
        earliestRetainedVersion = try c.decodeIfPresent(Int.self, forKey: .earliestRetainedVersion) ?? 0
        vacuumErrorClass = try c.decodeIfPresent(String.self, forKey: .vacuumErrorClass)
        view = try c.decodeIfPresent(ViewDef.self, forKey: .view)
        comment = try c.decodeIfPresent(String.self, forKey: .comment)
    }

    static let tableTypes: Set<String> = ["MANAGED", "EXTERNAL", "VIEW", "MATERIALIZED_VIEW", "STREAMING_TABLE"]

    func validate() throws {
        guard Self.tableTypes.contains(tableType) else {
            throw WorkspaceError("table \(name): unknown table_type \(tableType)")
        }
        guard !columns.isEmpty || tableType == "VIEW" else { throw WorkspaceError("table \(name) has no columns") }
        if let c = vacuumErrorClass, VacuumError.classes[c] == nil {
            let known = VacuumError.classes.keys.sorted().joined(separator: ", ")
            throw WorkspaceError("table \(name): unknown vacuum_error_class \(c); one of \(known)")
        }
        for col in columns {
            _ = try SQLType(parsing: col.type)
        }
        if let s = synthetic {
            guard commits.isEmpty else {
                throw WorkspaceError("synthetic table \(name) must not list commits")
            }
            guard s.rows >= 0, s.updateFraction >= 0, s.updateFraction <= 1, s.updateVersions >= 0 else {
                throw WorkspaceError("synthetic table \(name): rows, update_fraction or update_versions out of range")
            }
            guard columns == SyntheticTable.columns else {
                throw WorkspaceError("synthetic table \(name): columns must be left out (participant-panel columns)")
            }
            return
        }
        if tableType == "VIEW" {
            guard commits.isEmpty else { throw WorkspaceError("view \(name) must not have commits") }
            return
        }
        var lastTime: Int64 = .min
        // Rows are checked against the columns in effect at their commit (an `alter` commit changes them).
        var schema = Schema(from: 0, columns: columns, types: try columns.map { try SQLType(parsing: $0.type) })
        var properties: [String: String] = [:]
        for (i, c) in commits.enumerated() {
            guard c.version == i else {
                throw WorkspaceError("table \(name): commit \(i) has version \(c.version); versions start at 0 and increase by one")
            }
            for (k, v) in c.setProperties ?? [:] { properties[k] = v }
            if let alter = c.alter {
                schema = try TableState.altered(schema, by: alter, commit: c, properties: properties, table: name)
            } else {
                try TableState.checkCommitShape(c, columns: schema.columns, table: name)
            }
            let t = try Timestamp.parseMillis(c.timestamp)
            guard t > lastTime else {
                throw WorkspaceError("table \(name): commit \(c.version) timestamp does not increase")
            }
            lastTime = t
        }
    }
}

/// A three-part table name; `key` is the lower-cased dotted form used for lookups.
public struct TableName: Sendable, Hashable, CustomStringConvertible {
    public var catalog: String
    public var schema: String
    public var table: String

    public init(catalog: String, schema: String, table: String) {
        self.catalog = catalog
        self.schema = schema
        self.table = table
    }

    /// Parses `catalog.schema.table`, each part optionally backtick-quoted.
    public init(parsing text: String) throws {
        let parts = try Self.splitParts(text)
        guard parts.count == 3 else {
            throw WorkspaceError("table name \"\(text)\" must have three parts: catalog.schema.table")
        }
        self.init(catalog: parts[0], schema: parts[1], table: parts[2])
    }

    /// Splits a dotted name whose parts may be backtick-quoted (with ``` `` ``` as an escaped backtick).
    static func splitParts(_ text: String) throws -> [String] {
        var parts: [String] = []
        var current = ""
        var chars = Array(text)
        var i = 0
        var quotedPart = false
        while i < chars.count {
            let ch = chars[i]
            if ch == "`" {
                i += 1
                quotedPart = true
                var closed = false
                while i < chars.count {
                    if chars[i] == "`" {
                        if i + 1 < chars.count && chars[i + 1] == "`" {
                            current.append("`")
                            i += 2
                            continue
                        }
                        closed = true
                        i += 1
                        break
                    }
                    current.append(chars[i])
                    i += 1
                }
                guard closed else { throw WorkspaceError("unterminated backtick in name \"\(text)\"") }
            } else if ch == "." {
                guard !current.isEmpty || quotedPart else { throw WorkspaceError("empty part in name \"\(text)\"") }
                parts.append(current)
                current = ""
                quotedPart = false
                i += 1
            } else {
                current.append(ch)
                i += 1
            }
        }
        guard !current.isEmpty || quotedPart else { throw WorkspaceError("empty part in name \"\(text)\"") }
        parts.append(current)
        chars.removeAll()
        return parts.map { $0.trimmingCharacters(in: .whitespaces) }
    }

    public var key: String { "\(catalog.lowercased()).\(schema.lowercased()).\(table.lowercased())" }
    public var description: String { "\(catalog).\(schema).\(table)" }
    /// `` `catalog`.`schema`.`table` `` as Spark prints names in error messages.
    public var quoted: String {
        [catalog, schema, table].map { "`" + $0.replacingOccurrences(of: "`", with: "``") + "`" }.joined(separator: ".")
    }
}
