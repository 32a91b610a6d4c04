import CDFSyncCore
import Foundation

/// A FROM source resolved to columns and rows.
struct Relation {
    enum Source {
        case rows([Row])
        case snapshot(SyntheticSnapshot)
        case changes(SyntheticChanges)
    }

    var columns: [ResultColumn]
    /// Per column, the name of the source it comes from as a qualified reference may spell it: a table's
    /// `[catalog, schema, table]`, or an alias (`[c]`); empty for a derived table without an alias. `c.id` matches a
    /// column whose qualifier ends in `c`.
    var qualifiers: [[String]]
    var source: Source
    /// A column the rows are already sorted by, ascending (`_commit_version` for change data).
    var naturalOrder: String?

    init(columns: [ResultColumn], qualifier: [String] = [], source: Source, naturalOrder: String? = nil) {
        self.init(
            columns: columns, qualifiers: Array(repeating: qualifier, count: columns.count), source: source,
            naturalOrder: naturalOrder)
    }

    init(columns: [ResultColumn], qualifiers: [[String]], source: Source, naturalOrder: String? = nil) {
        self.columns = columns
        self.qualifiers = qualifiers
        self.source = source
        self.naturalOrder = naturalOrder
    }

    /// The same rows under another source name (an alias): every column's qualifier becomes `qualifier`.
    func renamed(_ qualifier: [String]) -> Relation {
        var r = self
        r.qualifiers = Array(repeating: qualifier, count: columns.count)
        return r
    }

    var count: Int {
        switch source {
        case .rows(let r): return r.count
        case .snapshot(let s): return s.count
        case .changes(let c): return c.count
        }
    }

    func value(_ row: Int, _ col: Int) -> String? {
        switch source {
        case .rows(let r): return r[row][col]
        case .snapshot(let s): return s.value(row: row, column: col)
        case .changes(let c): return c.value(row: row, column: col)
        }
    }

    var isLazy: Bool {
        if case .rows = source { return false }
        return true
    }

    func row(_ i: Int) -> Row {
        if case .rows(let r) = source { return r[i] }
        return (0..<columns.count).map { value(i, $0) }
    }
}

/// Runs one parsed statement against a consistent copy of the catalog.
struct Executor {
    var tables: [String: TableState]
    var access: Access
    var defaultCatalog: String
    var defaultSchema: String
    var parameters: [String: BoundParameter]
    var sql: String
    /// Rows a generic WHERE / ORDER BY may materialise from a generated table before giving up.
    var materializeLimit = 200_000
    /// `current_timestamp()` (the simulator clock at submission).
    var nowMillis: Int64 = 0
    /// Rows a join may read from each of its two sides, and row pairs it may compare in all.
    var joinSideLimit = 200_000
    var joinPairLimit = 20_000_000
    /// The common table expressions in scope (lower-cased name → definition), innermost `WITH` winning.
    var ctes: [String: CTEBinding] = [:]

    /// A `WITH` name: its query and the names it may itself use (those defined before it), so a common table
    /// expression cannot refer to itself.
    struct CTEBinding {
        var query: SelectStatement
        var scope: [String: CTEBinding]
    }

    static let changeColumns: [ResultColumn] = [
        ResultColumn(name: "_change_type", type: .string),
        ResultColumn(name: "_commit_version", type: .bigint),
        ResultColumn(name: "_commit_timestamp", type: .timestamp),
    ]

    func execute(_ stmt: Statement) throws(SQLError) -> ResultSet {
        switch stmt {
        case .select(let s): return try select(s)
        case .describeHistory(let name, let limit): return try describeHistory(name, limit: limit)
        case .showCatalogs(let like): return showCatalogs(like: like)
        case .showSchemas(let cat, let like): return try showSchemas(cat, like: like)
        case .showTables(let sch, let like): return try showTables(sch, like: like)
        case .showTblProperties(let name, let key): return try showTblProperties(name, key: key)
        case .describeTable(let name): return try describeTable(name, namesOnly: false)
        case .showColumns(let name): return try describeTable(name, namesOnly: true)
        }
    }

    // MARK: names

    func qualify(_ ref: NameRef) -> TableName {
        switch ref.parts.count {
        case 1: return TableName(catalog: defaultCatalog, schema: defaultSchema, table: ref.parts[0])
        case 2: return TableName(catalog: defaultCatalog, schema: ref.parts[0], table: ref.parts[1])
        default: return TableName(catalog: ref.parts[0], schema: ref.parts[1], table: ref.parts[2])
        }
    }

    func notFound(_ name: TableName, offset: Int) -> SQLError {
        var e = SQLError(
            "TABLE_OR_VIEW_NOT_FOUND", "42P01",
            "The table or view \(name.quoted) cannot be found. Verify the spelling and correctness of the schema and catalog.\nIf you did not qualify the name with a schema, verify the current_schema() output, or qualify the name with the correct schema and catalog.\nTo tolerate the error on drop use DROP VIEW IF EXISTS or DROP TABLE IF EXISTS.")
        e.suffix = "; line 1 pos \(offset)"
        return e
    }

    /// Looks a table up and checks SELECT on it.
    func lookup(_ name: TableName, offset: Int, checkGrants: Bool = true) throws(SQLError) -> TableState {
        guard let t = tables[name.key] else { throw notFound(name, offset: offset) }
        if checkGrants && !bypass { try access.requireSelect(t.name, isView: t.isView) }
        return t
    }

    // MARK: constant expressions

    func constant(_ e: Expr) throws(SQLError) -> Value {
        switch e {
        case .literal(let l, _): return literalValue(l)
        case .parameter(let name, _): return try parameter(name).sqlValue
        case .negate(let inner):
            if case .number(let d) = try constant(inner) { return .number(-d) }
            throw unsupported("non-numeric negation", at: e.offset)
        case .cast(let inner, let type):
            return try castValue(try constant(inner), to: type)
        default:
            throw SQLError(
                "DELTA_CDC_NON_CONSTANT_ARGUMENT", "42K0H",
                "Cannot use non-constant arguments such as columns or subqueries in this position.")
        }
    }

    func parameter(_ name: String) throws(SQLError) -> BoundParameter {
        guard let p = parameters[name] else {
            throw SQLError(
                "UNBOUND_SQL_PARAMETER", "42P02",
                "Found the unbound parameter: \(name). Please, fix `args` and provide a mapping of the parameter to either a SQL literal or collection constructor functions such as `map()`, `array()`, `struct()`.")
        }
        return p
    }

    func literalValue(_ l: Literal) -> Value {
        switch l {
        case .null: return .null
        case .string(let s): return .string(s)
        case .integer(let s), .decimal(let s): return .number(Double(s) ?? 0)
        case .boolean(let b): return .bool(b)
        }
    }

    func intArgument(_ e: Expr, what: String) throws(SQLError) -> Int {
        let v = try constant(e)
        if case .number(let d) = v, d == d.rounded(), d >= 0, d < 9.2e18 { return Int(d) }
        if case .string(let s) = v, let i = Int(s), i >= 0 { return i }
        throw SQLError(
            "INVALID_LIMIT_LIKE_EXPRESSION.IS_NEGATIVE", "42K0E",
            "The \(what) expression must be a non-negative integer literal or parameter.")
    }

    func unsupported(_ what: String, at offset: Int) -> SQLError {
        SQLError("UNSUPPORTED_FEATURE.SIMULATOR", "0A000", "The warehouse simulator does not support \(what).")
    }

    // MARK: SELECT

    func select(_ s: SelectStatement) throws(SQLError) -> ResultSet {
        var ex = self
        for cte in s.ctes {
            ex.ctes[cte.name.lowercased()] = CTEBinding(query: cte.query, scope: ex.ctes)
        }
        guard let from = s.from else {
            // SELECT <constants>: one row over no columns.
            return try ex.project(s, over: Relation(columns: [], source: .rows([[]])))
        }
        let rel = try ex.resolveFrom(from)
        return try ex.project(s, over: rel)
    }

    static func timeTravelOnView() -> SQLError {
        SQLError(
            "DELTA_UNSUPPORTED_TIME_TRAVEL_VIEWS", "0AKDC",
            "Cannot time travel views, subqueries, streams or change data feed queries.")
    }

    func resolveFrom(_ from: FromSource) throws(SQLError) -> Relation {
        switch from {
        case .table(let ref, let tt, let alias):
            if ref.parts.count == 1, let cte = ctes[ref.parts[0].lowercased()] {
                guard tt == nil else { throw Self.timeTravelOnView() }
                var inner = self
                inner.ctes = cte.scope
                return try relation(of: try inner.select(cte.query), qualifier: [alias ?? ref.parts[0]])
            }
            let name = qualify(ref)
            let qualifier = alias.map { [$0] } ?? [name.catalog, name.schema, name.table]
            if name.schema.lowercased() == "information_schema" {
                guard tt == nil else { throw Self.timeTravelOnView() }
                return try informationSchema(name, offset: ref.offset).renamed(qualifier)
            }
            let t = try lookup(name, offset: ref.offset)
            if t.isView {
                if tt != nil { throw Self.timeTravelOnView() }
                return try viewRelation(t).renamed(alias.map { [$0] } ?? [t.name.catalog, t.name.schema, t.name.table])
            }
            var version = t.latestVersion
            switch tt {
            case .version(let e)?:
                version = try intArgument(e, what: "VERSION AS OF")
                try checkVersionExists(t, version)
            case .timestamp(let e)?:
                version = try versionAtOrBefore(t, timestamp: e)
            case nil:
                break
            }
            return tableRelation(t, version: version).renamed(alias.map { [$0] } ?? [t.name.catalog, t.name.schema, t.name.table])
        case .tableChanges(let args, let offset, let alias):
            return try tableChanges(args, offset: offset).renamed(alias.map { [$0] } ?? [])
        case .derived(let query, let alias, _):
            return try relation(of: try select(query), qualifier: alias.map { [$0] } ?? [])
        case .join(let l, let r, let kind, let on, _):
            return try join(try resolveFrom(l), try resolveFrom(r), kind, on: on)
        }
    }

    /// A query's result as a FROM source. Generated rows stay lazy (a projection of a huge generated table still
    /// streams through an outer SELECT); anything else is read into memory, up to `materializeLimit` rows.
    func relation(of result: ResultSet, qualifier: [String]) throws(SQLError) -> Relation {
        switch result.rows {
        case let m as MaterializedRows:
            return Relation(columns: result.columns, qualifier: qualifier, source: .rows(m.rows))
        case let snap as SyntheticSnapshot:
            return Relation(columns: result.columns, qualifier: qualifier, source: .snapshot(snap))
        case let ch as SyntheticChanges:
            // Still in version order when `_commit_version` is the generated one (not another column renamed so).
            let versionColumn = SyntheticTable.columns.count + 1
            let natural = zip(result.columns, ch.projection).contains {
                $0.name.caseInsensitiveCompare("_commit_version") == .orderedSame && $1 == versionColumn
            }
            return Relation(
                columns: result.columns, qualifier: qualifier, source: .changes(ch),
                naturalOrder: natural ? "_commit_version" : nil)
        default:
            guard result.rows.count <= materializeLimit else {
                throw unsupported("a subquery with LIMIT or OFFSET over more than \(materializeLimit) generated rows", at: 0)
            }
            let rows = (0..<result.rows.count).map { result.rows.row($0, width: result.columns.count) }
            return Relation(columns: result.columns, qualifier: qualifier, source: .rows(rows))
        }
    }

    // MARK: joins

    /// A key of a hash join: values that compare equal under `=` hash the same (within one type family).
    enum JoinKey: Hashable {
        case number(Double)
        case text(String)
        case timestamp(Int64)
        case bool(Bool)
        /// Spark's NaN equals NaN.
        case nan
    }

    /// `l [INNER|LEFT] JOIN r ON cond`. Both sides are read into memory (at most `joinSideLimit` rows each). An
    /// equality between a column of each side (`a.id = b.participant_id`, ANDed with anything) makes it a hash join;
    /// otherwise every pair is tested, up to `joinPairLimit` pairs. Rows come out in the left side's order, each with
    /// its matches in the right side's order; a LEFT JOIN row without a match gets NULLs on the right.
    func join(_ l: Relation, _ r: Relation, _ kind: JoinKind, on: Expr) throws(SQLError) -> Relation {
        let columns = l.columns + r.columns
        let qualifiers = l.qualifiers + r.qualifiers
        let shape = Relation(columns: columns, qualifiers: qualifiers, source: .rows([]))
        // Names resolve (or fail: unknown, ambiguous) before any row is read, as Spark analyses before it runs.
        try checkColumns(on, shape)
        if containsAggregate(on) {
            throw SQLError(
                "INVALID_WHERE_CONDITION", "42903",
                "The WHERE condition \(display(on)) contains invalid expressions: aggregate functions. Rewrite the query to avoid window functions, aggregate functions, and generator functions in the WHERE clause.")
        }
        guard l.count <= joinSideLimit, r.count <= joinSideLimit else {
            throw unsupported("joins of a source of more than \(joinSideLimit) rows", at: 0)
        }
        let left = (0..<l.count).map { l.row($0) }
        let right = (0..<r.count).map { r.row($0) }
        // Equalities between a column of each side, in either order.
        var keys: [(Int, Int)] = []
        var conjuncts = [on]
        while let c = conjuncts.popLast() {
            if case .binary("AND", let a, let b) = c {
                conjuncts += [a, b]
                continue
            }
            guard case .binary("=", .column(let pa, let oa), .column(let pb, let ob)) = c else { continue }
            let ia = try columnIndex(pa, in: shape, offset: oa), ib = try columnIndex(pb, in: shape, offset: ob)
            let (li, ri) = ia < l.columns.count ? (ia, ib - l.columns.count) : (ib, ia - l.columns.count)
            guard li >= 0, li < l.columns.count, ri >= 0, ri < r.columns.count,
                Self.keyFamily(l.columns[li].type) != nil,
                Self.keyFamily(l.columns[li].type) == Self.keyFamily(r.columns[ri].type)
            else { continue }
            keys.append((li, ri))
        }
        let leftKeys = keys.map(\.0), rightKeys = keys.map(\.1)
        var buckets: [[JoinKey]: [Int]] = [:]
        if !keys.isEmpty {
            for (j, row) in right.enumerated() {
                guard let k = Self.joinKey(row, rightKeys, r.columns) else { continue }  // NULL never equals
                buckets[k, default: []].append(j)
            }
        } else {
            let (pairs, overflow) = left.count.multipliedReportingOverflow(by: right.count)
            guard !overflow, pairs <= joinPairLimit else {
                throw unsupported(
                    "a join without an equality between a column of each side over more than \(joinPairLimit) row pairs",
                    at: 0)
            }
        }
        let nulls = Row(repeating: nil, count: r.columns.count)
        var out: [Row] = []
        var tested = 0
        var candidates: [Row] = []
        for row in left {
            candidates.removeAll(keepingCapacity: true)
            if keys.isEmpty {
                for other in right { candidates.append(row + other) }
            } else if let k = Self.joinKey(row, leftKeys, l.columns), let matches = buckets[k] {
                for j in matches { candidates.append(row + right[j]) }
            }
            tested += candidates.count
            guard tested <= joinPairLimit else {
                throw unsupported("joins that compare more than \(joinPairLimit) row pairs", at: 0)
            }
            var matched = false
            if !candidates.isEmpty {
                let pairs = Relation(columns: columns, qualifiers: qualifiers, source: .rows(candidates))
                for k in candidates.indices where try eval(on, pairs, row: k) == .bool(true) {
                    out.append(candidates[k])
                    matched = true
                }
            }
            if !matched && kind == .left { out.append(row + nulls) }
        }
        return Relation(columns: columns, qualifiers: qualifiers, source: .rows(out))
    }

    /// Which types hash together in a join key: the same family compares by value without casts.
    static func keyFamily(_ t: SQLType) -> Int? {
        if t.isNumeric { return 0 }
        if t.isTimestamp { return 1 }
        if t.name == "BOOLEAN" { return 2 }
        if t.name == "STRING" { return 3 }
        if t.name == "DATE" { return 4 }
        return nil
    }

    static func joinKey(_ row: Row, _ columns: [Int], _ types: [ResultColumn]) -> [JoinKey]? {
        var key: [JoinKey] = []
        key.reserveCapacity(columns.count)
        for c in columns {
            switch Value(text: row[c], type: types[c].type) {
            case .null: return nil
            case .number(let d): key.append(d.isNaN ? .nan : .number(d + 0))  // -0 and 0 are equal
            case .string(let s): key.append(.text(s))
            case .timestamp(let ms): key.append(.timestamp(ms))
            case .bool(let b): key.append(.bool(b))
            }
        }
        return key
    }

    func tableRelation(_ t: TableState, version: Int) -> Relation {
        let schema = t.schema(at: max(version, 0))
        let cols = zip(schema.columns, schema.types).map { ResultColumn(name: $0.name, type: $1) }
        guard version >= 0 else { return Relation(columns: cols, source: .rows([])) }
        if let s = t.synthetic { return Relation(columns: cols, source: .snapshot(s.snapshotSource(version: version))) }
        let src = t.snapshot(at: version) as! MaterializedRows
        return Relation(columns: cols, source: .rows(src.rows))
    }

    func checkVersionExists(_ t: TableState, _ v: Int) throws(SQLError) {
        guard v >= t.earliestRetainedVersion && v <= t.latestVersion else {
            throw SQLError(
                "DELTA_VERSION_NOT_FOUND", "22003",
                "Cannot time travel Delta table to version \(v). Available versions: [\(t.earliestRetainedVersion), \(t.latestVersion)].")
        }
    }

    func timestampArgument(_ e: Expr) throws(SQLError) -> Int64 {
        switch try constant(e) {
        case .timestamp(let ms): return ms
        case .string(let s):
            guard let ms = try? Timestamp.parseMillis(s) else { throw Value.castError(s, "TIMESTAMP") }
            return ms
        case .null:
            throw SQLError(
                "DELTA_CDC_READ_NULL_RANGE_BOUNDARY", "22004",
                "The CDC read start/end parameters cannot be null. Please provide a valid version or timestamp.")
        default:
            throw SQLError("DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE", "42K09", "Expected a TIMESTAMP or STRING argument.")
        }
    }

    func versionAtOrBefore(_ t: TableState, timestamp e: Expr) throws(SQLError) -> Int {
        let ms = try timestampArgument(e)
        guard let v = t.versions.lastIndex(where: { $0.timestampMillis <= ms }), v >= t.earliestRetainedVersion else {
            throw SQLError(
                "DELTA_TIMESTAMP_EARLIER_THAN_COMMIT_RETENTION", "42816",
                "The provided timestamp (\(Timestamp.format(millis: ms))) is before the earliest version available to this table (\(Timestamp.format(millis: t.versions[t.earliestRetainedVersion].timestampMillis))). Please use a timestamp after \(Timestamp.format(millis: t.versions[t.earliestRetainedVersion].timestampMillis)).")
        }
        return v
    }

    func viewRelation(_ t: TableState) throws(SQLError) -> Relation {
        guard let def = t.view else { throw notFound(t.name, offset: 0) }
        var text = "SELECT " + def.select.joined(separator: ", ") + " FROM " + (try? TableName(parsing: def.source))!.quoted
        if let w = def.where { text += " WHERE " + w }
        let stmt: Statement
        do {
            stmt = try Parser.parse(text)
        } catch {
            throw SQLError("INVALID_VIEW_TEXT", "XX000", "The view \(t.name.quoted) cannot be displayed due to invalid view text.")
        }
        var inner = self
        inner.bypass = true
        inner.ctes = [:]  // the view's text is its own: the caller's WITH names mean nothing in it
        guard case .select(let s) = stmt else { throw notFound(t.name, offset: 0) }
        let result = try inner.select(s)
        let rows = (0..<result.rows.count).map { result.rows.row($0, width: result.columns.count) }
        return Relation(columns: result.columns, source: .rows(rows))
    }

    /// Set for a view's own query: its owner's rights apply, not the caller's.
    var bypass = false

    // MARK: table_changes

    func tableChanges(_ args: [Expr], offset: Int) throws(SQLError) -> Relation {
        guard args.count == 2 || args.count == 3 else {
            throw SQLError(
                "WRONG_NUM_ARGS.WITHOUT_SUGGESTION", "42605",
                "The `table_changes` requires [2, 3] parameters but the actual number is \(args.count). Please, refer to 'https://docs.databricks.com/sql/language-manual/sql-ref-functions.html' for a fix.")
        }
        let nameValue = try constant(args[0])
        guard case .string(let nameText) = nameValue else {
            throw SQLError(
                "DELTA_CDC_NON_CONSTANT_ARGUMENT", "42K0H",
                "Unsupported expression type for table name: table_changes requires a string literal naming the table.")
        }
        let parts: [String]
        do {
            parts = try TableName.splitParts(nameText)
        } catch {
            throw Parser.syntaxError(sql: nameText, offset: 0, near: nameText, bytes: Array(nameText.utf8))
        }
        guard (1...3).contains(parts.count) else {
            throw SQLError(
                "REQUIRES_SINGLE_PART_NAMESPACE", "42K05", "table_changes requires a table name of at most three parts.")
        }
        let name = qualify(NameRef(parts: parts, offset: offset))
        let t = try lookup(name, offset: offset, checkGrants: !bypass)
        guard t.isDelta else {
            throw SQLError(
                "DELTA_TABLE_ONLY_OPERATION", "0AKDD",
                "\(name.description) is not a Delta table. table_changes is only supported for Delta tables.")
        }
        let latest = t.latestVersion
        // Resolve both bounds to versions.
        func isVersion(_ e: Expr) throws(SQLError) -> Bool {
            switch try constant(e) {
            case .number: return true
            case .null:
                throw SQLError(
                    "DELTA_CDC_READ_NULL_RANGE_BOUNDARY", "22004",
                    "The CDC read start/end parameters cannot be null. Please provide a valid version or timestamp.")
            default: return false
            }
        }
        var start: Int
        if try isVersion(args[1]) {
            guard case .number(let d) = try constant(args[1]), d == d.rounded() else {
                throw SQLError("DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE", "42K09", "The start version must be an integer.")
            }
            start = Int(d)
        } else {
            let ms = try timestampArgument(args[1])
            guard let v = t.versions.firstIndex(where: { $0.timestampMillis >= ms }) else {
                let last = Timestamp.format(millis: t.versions[latest].timestampMillis)
                throw SQLError(
                    "DELTA_TIMESTAMP_GREATER_THAN_COMMIT", "42816",
                    "The provided timestamp (\(Timestamp.format(millis: ms))) is after the latest version available to this table (\(last)). Please use a timestamp before or at \(last).")
            }
            if v == 0 && t.earliestRetainedVersion > 0 && ms < t.versions[t.earliestRetainedVersion].timestampMillis {
                let first = Timestamp.format(millis: t.versions[t.earliestRetainedVersion].timestampMillis)
                throw SQLError(
                    "DELTA_TIMESTAMP_EARLIER_THAN_COMMIT_RETENTION", "42816",
                    "The provided timestamp (\(Timestamp.format(millis: ms))) is before the earliest version available to this table (\(first)). Please use a timestamp after \(first).")
            }
            start = v
        }
        var end = latest
        var endGiven = false
        if args.count == 3 {
            endGiven = true
            if try isVersion(args[2]) {
                guard case .number(let d) = try constant(args[2]), d == d.rounded() else {
                    throw SQLError("DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE", "42K09", "The end version must be an integer.")
                }
                end = Int(d)
            } else {
                let ms = try timestampArgument(args[2])
                end = t.versions.lastIndex(where: { $0.timestampMillis <= ms }) ?? -1
                if end < start {
                    // Both timestamps fall between the same two commits: empty, not an error.
                    return changeRelation(t, from: 1, to: 0, read: readSchema(t, end: t.latestVersion))
                }
            }
        }
        if start > latest {
            throw SQLError(
                "DELTA_CDC_START_VERSION_AFTER_LATEST", "22003",
                "Start version \(start) for change data feed exceeds the latest table version \(latest).")
        }
        if endGiven && end < start {
            throw SQLError(
                "DELTA_INVALID_CDC_RANGE", "22003",
                "CDC range from start \(start) to end \(end) was invalid. End cannot be before start.")
        }
        end = min(end, latest)
        if start < t.earliestRetainedVersion && start >= 0 {
            throw VacuumError.error(t.vacuumErrorClass, table: t.name, start: start, end: end,
                earliest: t.earliestRetainedVersion, latest: latest)
        }
        if start < 0 {
            throw SQLError(
                "DELTA_VERSION_NOT_FOUND", "22003",
                "Cannot time travel Delta table to version \(start). Available versions: [\(t.earliestRetainedVersion), \(latest)].")
        }
        for v in start...end where !t.versions[v].cdfEnabled {
            throw SQLError(
                "DELTA_MISSING_CHANGE_DATA", "KD002",
                "Error getting change data for range [\(start) , \(end)] as change data was not recorded for version [\(v)]. If you've enabled change data feed on this table, use `DESCRIBE HISTORY` to see when it was first enabled. Otherwise, to start recording change data, use `ALTER TABLE table_name SET TBLPROPERTIES (delta.enableChangeDataFeed=true)`.")
        }
        // A column-mapping table is read in the schema of the range's end version, others in the latest schema;
        // either way the rows of every version in the range must be readable in it, so a rename, drop or type
        // change after the start fails the read (Delta's batch CDF schema check).
        let read = readSchema(t, end: end)
        if start < end, let w = (start + 1...end).first(where: { t.versions[$0].alter?.breaksChangeFeed == true }) {
            throw SQLError(
                "DELTA_CHANGE_DATA_FEED_INCOMPATIBLE_SCHEMA_CHANGE", "0AKDC",
                "Retrieving table changes between version \(start) and \(end) failed because of an incompatible schema change. Your read schema is \(read.json) at version \(end), but we found an incompatible schema change at version \(w). If possible, please query table changes separately from version \(start) to \(w) - 1, and from version \(w) to \(end).")
        }
        return changeRelation(t, from: start, to: end, read: read)
    }

    /// The schema `table_changes` up to `end` returns rows in.
    func readSchema(_ t: TableState, end: Int) -> Schema {
        let mode = (t.versions.last?.properties["delta.columnMapping.mode"] ?? "none").lowercased()
        return mode == "name" || mode == "id" ? t.schema(at: end) : t.schema(at: t.latestVersion)
    }

    func changeRelation(_ t: TableState, from: Int, to: Int, read: Schema) -> Relation {
        let cols = zip(read.columns, read.types).map { ResultColumn(name: $0.name, type: $1) } + Self.changeColumns
        if let s = t.synthetic {
            return Relation(columns: cols, source: .changes(s.changesSource(from: from, to: to)), naturalOrder: "_commit_version")
        }
        let src = t.changes(from: from, to: to, read: read) as! MaterializedRows
        return Relation(columns: cols, source: .rows(src.rows), naturalOrder: "_commit_version")
    }

    // MARK: projection, filtering, ordering

    /// Spark's `toSQLId`: every part in backticks (a backtick doubled), joined by dots.
    static func sqlID(_ parts: [String]) -> String {
        parts.map { "`" + $0.replacingOccurrences(of: "`", with: "``") + "`" }.joined(separator: ".")
    }

    /// Whether a column whose source is `qualifier` answers to a reference qualified by `prefix` (`c`, `crm.customers`,
    /// `main.crm.customers`): the qualifier ends with it, compared case-insensitively.
    static func qualifier(_ qualifier: [String], matches prefix: ArraySlice<String>) -> Bool {
        guard prefix.count <= qualifier.count else { return false }
        return zip(qualifier.suffix(prefix.count), prefix).allSatisfy { $0.caseInsensitiveCompare($1) == .orderedSame }
    }

    /// Resolves a column reference (`id`, `c.id`, `main.crm.customers.id`) in a relation: exactly one column must
    /// answer to it. None → `UNRESOLVED_COLUMN` with Spark's suggestions; several (`id` of both sides of a join, or
    /// of a subquery that selects it twice) → `AMBIGUOUS_REFERENCE`.
    func columnIndex(_ parts: [String], in rel: Relation, offset: Int) throws(SQLError) -> Int {
        let name = parts.last!
        let prefix = parts.dropLast()
        var found: [Int] = []
        for (i, c) in rel.columns.enumerated()
        where c.name.caseInsensitiveCompare(name) == .orderedSame && Self.qualifier(rel.qualifiers[i], matches: prefix) {
            found.append(i)
        }
        if found.count == 1 { return found[0] }
        var e: SQLError
        if found.count > 1 {
            let names = found.map { Self.sqlID(rel.qualifiers[$0] + [rel.columns[$0].name]) }.sorted()
            e = SQLError(
                "AMBIGUOUS_REFERENCE", "42704",
                "Reference \(Self.sqlID(parts)) is ambiguous, could be: [\(names.joined(separator: ", "))].")
        } else if rel.columns.isEmpty {
            e = SQLError(
                "UNRESOLVED_COLUMN.WITHOUT_SUGGESTION", "42703",
                "A column, variable, or function parameter with name \(Self.sqlID(parts)) cannot be resolved.")
        } else {
            let suggestions = Self.suggestions(
                for: parts, among: rel.columns.indices.map { rel.qualifiers[$0] + [rel.columns[$0].name] })
            e = SQLError(
                "UNRESOLVED_COLUMN.WITH_SUGGESTION", "42703",
                "A column, variable, or function parameter with name \(Self.sqlID(parts)) cannot be resolved. Did you mean one of the following? [\(suggestions.prefix(5).joined(separator: ", "))].")
        }
        e.suffix = "; line 1 pos \(offset)"
        return try { () throws(SQLError) -> Int in throw e }()
    }

    /// Spark's `orderSuggestedIdentifiersBySimilarity`: the candidates' common qualifier is left out (all of it when
    /// every candidate has the same one and the reference is one part, else everything but the table name when the
    /// reference has at most two parts and the candidates share what comes before it), then the quoted names are
    /// ordered by edit distance to the reference as written.
    static func suggestions(for parts: [String], among candidates: [[String]]) -> [String] {
        var stripped = candidates
        if parts.count == 1 && Set(candidates.map { $0.dropLast().map { $0.lowercased() } }).count == 1 {
            stripped = candidates.map { Array($0.suffix(1)) }
        } else if parts.count <= 2 && Set(candidates.map { $0.dropLast(2).map { $0.lowercased() } }).count == 1 {
            stripped = candidates.map { Array($0.suffix(2)) }
        }
        let written = parts.map { p in
            p.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 95 }
                ? p : "`" + p.replacingOccurrences(of: "`", with: "``") + "`"
        }.joined(separator: ".")
        let quoted = stripped.map(sqlID)
        // A stable order: equal distances keep the columns' order.
        return quoted.enumerated()
            .map { (levenshtein($0.element, written), $0.offset, $0.element) }
            .sorted { ($0.0, $0.1) < ($1.0, $1.1) }
            .map(\.2)
    }

    /// Checks that every column an expression mentions exists.
    func checkColumns(_ e: Expr, _ rel: Relation, aliases: [String: Expr] = [:]) throws(SQLError) {
        switch e {
        case .column(let parts, let off):
            if parts.count == 1, aliases[parts[0].lowercased()] != nil { return }
            _ = try columnIndex(parts, in: rel, offset: off)
        case .binary(_, let l, let r):
            try checkColumns(l, rel, aliases: aliases)
            try checkColumns(r, rel, aliases: aliases)
        case .not(let x), .isNull(let x, _), .negate(let x): try checkColumns(x, rel, aliases: aliases)
        case .inList(let x, let list, _):
            try checkColumns(x, rel, aliases: aliases)
            for y in list { try checkColumns(y, rel, aliases: aliases) }
        case .like(let x, let p, _):
            try checkColumns(x, rel, aliases: aliases)
            try checkColumns(p, rel, aliases: aliases)
        case .between(let x, let lo, let hi, _):
            try checkColumns(x, rel, aliases: aliases)
            try checkColumns(lo, rel, aliases: aliases)
            try checkColumns(hi, rel, aliases: aliases)
        case .function(let n, let args, let star, _):
            try checkFunction(n, args, star: star)
            for a in args { try checkColumns(a, rel, aliases: aliases) }
        case .cast(let x, _): try checkColumns(x, rel, aliases: aliases)
        case .literal, .parameter: break
        }
    }

    func eval(_ e: Expr, _ rel: Relation, row: Int, aliases: [String: Expr] = [:]) throws(SQLError) -> Value {
        switch e {
        case .literal(let l, _): return literalValue(l)
        case .parameter(let n, _): return try parameter(n).sqlValue
        case .column(let parts, let off):
            if parts.count == 1, let a = aliases[parts[0].lowercased()] { return try eval(a, rel, row: row) }
            let i = try columnIndex(parts, in: rel, offset: off)
            return Value(text: rel.value(row, i), type: rel.columns[i].type)
        case .cast(let x, let type):
            return try castValue(try eval(x, rel, row: row, aliases: aliases), to: type)
        case .function(let n, let args, _, let off):
            guard !Self.aggregateFunctions.contains(n) else {
                throw SQLError(
                    "INVALID_WHERE_CONDITION", "42903",
                    "The WHERE condition \(display(e)) contains invalid expressions: \(n). Rewrite the query to avoid window functions, aggregate functions, and generator functions in the WHERE clause.")
            }
            var values: [Value] = []
            for a in args { values.append(try eval(a, rel, row: row, aliases: aliases)) }
            return try scalarFunction(n, values, offset: off)
        case .negate(let x):
            switch try eval(x, rel, row: row, aliases: aliases) {
            case .number(let d): return .number(-d)
            case .null: return .null
            default: throw unsupported("negating a non-numeric value", at: e.offset)
            }
        case .not(let x):
            switch try eval(x, rel, row: row, aliases: aliases) {
            case .bool(let b): return .bool(!b)
            case .null: return .null
            default: throw typeMismatch("NOT")
            }
        case .isNull(let x, let neg):
            let v = try eval(x, rel, row: row, aliases: aliases)
            return .bool(v.isNull != neg)
        case .binary(let op, let l, let r):
            if op == "AND" || op == "OR" {
                let a = try eval(l, rel, row: row, aliases: aliases)
                let b = try eval(r, rel, row: row, aliases: aliases)
                func tri(_ v: Value) throws(SQLError) -> Bool? {
                    switch v {
                    case .bool(let x): return x
                    case .null: return nil
                    default: throw typeMismatch(op)
                    }
                }
                let x = try tri(a), y = try tri(b)
                if op == "AND" {
                    if x == false || y == false { return .bool(false) }
                    if x == nil || y == nil { return .null }
                    return .bool(true)
                }
                if x == true || y == true { return .bool(true) }
                if x == nil || y == nil { return .null }
                return .bool(false)
            }
            let a = try eval(l, rel, row: row, aliases: aliases)
            let b = try eval(r, rel, row: row, aliases: aliases)
            guard let c = try Value.compare(a, b) else { return .null }
            switch op {
            case "=": return .bool(c == 0)
            case "<>": return .bool(c != 0)
            case "<": return .bool(c < 0)
            case "<=": return .bool(c <= 0)
            case ">": return .bool(c > 0)
            default: return .bool(c >= 0)
            }
        case .inList(let x, let list, let neg):
            let v = try eval(x, rel, row: row, aliases: aliases)
            if v.isNull { return .null }
            var sawNull = false
            for item in list {
                let w = try eval(item, rel, row: row, aliases: aliases)
                guard let c = try Value.compare(v, w) else {
                    sawNull = true
                    continue
                }
                if c == 0 { return .bool(!neg) }
            }
            return sawNull ? .null : .bool(neg)
        case .like(let x, let p, let neg):
            let v = try eval(x, rel, row: row, aliases: aliases)
            let pv = try eval(p, rel, row: row, aliases: aliases)
            guard case .string(let pattern) = pv else { return pv.isNull ? .null : .bool(false) }
            switch v {
            case .null: return .null
            case .string(let s): return .bool(sqlLike(s, pattern) != neg)
            case .number(let d): return .bool(sqlLike(String(d), pattern) != neg)
            default: return .bool(neg)
            }
        case .between(let x, let lo, let hi, let neg):
            let v = try eval(x, rel, row: row, aliases: aliases)
            guard let a = try Value.compare(v, try eval(lo, rel, row: row, aliases: aliases)),
                let b = try Value.compare(v, try eval(hi, rel, row: row, aliases: aliases))
            else { return .null }
            return .bool((a >= 0 && b <= 0) != neg)
        }
    }

    func typeMismatch(_ op: String) -> SQLError {
        SQLError(
            "DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE", "42K09",
            "Cannot resolve \"\(op)\" due to data type mismatch: the operand must be BOOLEAN.")
    }

    struct OutputColumn {
        var column: ResultColumn
        /// Index into the relation, or nil for a constant.
        var index: Int?
        var constant: String?
        /// A computed item (function call, comparison), evaluated per row.
        var expr: Expr?
    }

    /// One ORDER BY key: a column of the relation by position (a select item it names), or an expression.
    struct OrderKey {
        var item: OrderItem
        var index: Int?
    }

    func project(_ s: SelectStatement, over rel: Relation) throws(SQLError) -> ResultSet {
        // Output columns.
        var outputs: [OutputColumn] = []
        var aliases: [String: Expr] = [:]
        for item in s.items {
            switch item {
            case .star:
                for (i, c) in rel.columns.enumerated() { outputs.append(OutputColumn(column: c, index: i)) }
            case .qualifiedStar(let parts, let off):
                let matching = rel.columns.indices.filter { Self.qualifier(rel.qualifiers[$0], matches: parts[...]) }
                guard !matching.isEmpty else {
                    var e = SQLError(
                        "CANNOT_RESOLVE_STAR_EXPAND", "42704",
                        "Cannot resolve \(Self.sqlID(parts)).* given input columns \(rel.columns.map { Self.sqlID([$0.name]) }.joined(separator: ", ")). Please check that the specified table or struct exists and is accessible in the input columns.")
                    e.suffix = "; line 1 pos \(off)"
                    throw e
                }
                for i in matching { outputs.append(OutputColumn(column: rel.columns[i], index: i)) }
            case .expr(let e, let alias, let text):
                switch e {
                case .column(let parts, let off):
                    let i = try columnIndex(parts, in: rel, offset: off)
                    var col = rel.columns[i]
                    if let alias { col.name = alias }
                    outputs.append(OutputColumn(column: col, index: i))
                case .literal(let l, _):
                    let (v, type): (String?, SQLType) = {
                        switch l {
                        case .null: return (nil, try! SQLType(parsing: "VOID"))
                        case .string(let x): return (x, .string)
                        case .integer(let x): return (x, Int(x).map { Int32(exactly: $0) != nil } == true ? .int : .bigint)
                        case .decimal(let x): return (x, try! SQLType(parsing: "DOUBLE"))
                        case .boolean(let b): return (b ? "true" : "false", .boolean)
                        }
                    }()
                    outputs.append(OutputColumn(column: ResultColumn(name: alias ?? text, type: type), index: nil, constant: v))
                case .parameter(let n, _):
                    let p = try parameter(n)
                    let type = (try? SQLType(parsing: p.type)) ?? .string
                    outputs.append(
                        OutputColumn(column: ResultColumn(name: alias ?? text, type: type), index: nil, constant: p.value))
                default:
                    try checkColumns(e, rel)
                    outputs.append(
                        OutputColumn(
                            column: ResultColumn(name: alias ?? display(e), type: try typeOf(e, rel)), index: nil,
                            constant: nil, expr: e))
                    _ = text
                }
                if let alias { aliases[alias.lowercased()] = e }
            }
        }
        if let w = s.whereClause { try checkColumns(w, rel) }
        if outputs.contains(where: { $0.expr.map(containsAggregate) ?? false }) {
            return try aggregate(s, rel, outputs)
        }
        let computed = outputs.contains { $0.expr != nil }
        // ORDER BY: positions refer to select items; a one-part name is an output column first (`ORDER BY id` after
        // `SELECT c.id ... JOIN`), an input column otherwise.
        var order: [OrderKey] = []
        for o in s.orderBy {
            var output: Int?
            if case .literal(.integer(let n), _) = o.expr, let k = Int(n) {
                guard k >= 1 && k <= outputs.count else {
                    throw SQLError(
                        "ORDER_BY_POS_OUT_OF_RANGE", "42805",
                        "ORDER BY position \(k) is not in select list (valid range is [1, \(outputs.count)]).")
                }
                output = k - 1
            } else if case .column(let parts, _) = o.expr, parts.count == 1 {
                let named = outputs.indices.filter { outputs[$0].column.name.caseInsensitiveCompare(parts[0]) == .orderedSame }
                if named.count == 1 { output = named[0] }
            }
            if let k = output {
                let out = outputs[k]
                if let idx = out.index {
                    order.append(OrderKey(item: o, index: idx))
                } else if let e = out.expr {
                    order.append(OrderKey(item: OrderItem(expr: e, descending: o.descending, nullsFirst: o.nullsFirst)))
                }
                continue  // ordering by a constant does nothing
            }
            try checkColumns(o.expr, rel, aliases: aliases)
            order.append(OrderKey(item: o))
        }
        // Ordering already satisfied by the relation (ascending change data by version).
        if let natural = rel.naturalOrder, order.count == 1, !order[0].item.descending {
            var name: String?
            if let idx = order[0].index {
                name = rel.columns[idx].name
            } else if case .column(let parts, let off) = order[0].item.expr,
                let idx = try? columnIndex(parts, in: rel, offset: off)
            {
                name = rel.columns[idx].name
            }
            if name?.caseInsensitiveCompare(natural) == .orderedSame { order = [] }
        }
        let limit = try s.limit.map { e throws(SQLError) in try intArgument(e, what: "limit") }
        let offset = try s.offset.map { e throws(SQLError) in try intArgument(e, what: "offset") } ?? 0

        if s.whereClause == nil && order.isEmpty && !computed {
            // Streamable: project lazily, then slice.
            let total = rel.count
            let lo = min(offset, total)
            let hi = limit.map { min(total, lo + $0) } ?? total
            let columns = outputs.map(\.column)
            let source: any RowSource
            switch rel.source {
            case .rows(let rows):
                source = MaterializedRows(rows: rows[lo..<hi].map { r in outputs.map { o in o.index.map { r[$0] } ?? o.constant } })
                return ResultSet(columns: columns, rows: source)
            case .snapshot(var snap):
                guard outputs.allSatisfy({ $0.index != nil }) else { throw unsupported("constants in a select list over a generated table", at: 0) }
                snap.projection = outputs.map { snap.projection[$0.index!] }
                source = snap
            case .changes(var ch):
                guard outputs.allSatisfy({ $0.index != nil }) else { throw unsupported("constants in a select list over a generated table", at: 0) }
                ch.projection = outputs.map { ch.projection[$0.index!] }
                source = ch
            }
            if lo == 0 && hi == total { return ResultSet(columns: columns, rows: source) }
            return ResultSet(columns: columns, rows: SlicedRows(base: source, offset: lo, count: hi - lo))
        }

        // Generic path: evaluate over row indices.
        if rel.isLazy && rel.count > materializeLimit {
            throw unsupported(
                "WHERE, ORDER BY (other than ORDER BY _commit_version) or computed columns over more than \(materializeLimit) generated rows",
                at: 0)
        }
        var indices: [Int] = []
        for r in 0..<rel.count {
            if let w = s.whereClause {
                guard try eval(w, rel, row: r) == .bool(true) else { continue }
            }
            indices.append(r)
        }
        if !order.isEmpty {
            var keys: [[Value]] = []
            keys.reserveCapacity(indices.count)
            for r in indices {
                keys.append(try order.map { o throws(SQLError) in
                    if let i = o.index { return Value(text: rel.value(r, i), type: rel.columns[i].type) }
                    return try eval(o.item.expr, rel, row: r, aliases: aliases)
                })
            }
            var perm = Array(0..<indices.count)
            var failure: SQLError?
            perm.sort { a, b in
                for (k, key) in order.enumerated() {
                    let o = key.item
                    let x = keys[a][k], y = keys[b][k]
                    if x.isNull || y.isNull {
                        if x.isNull && y.isNull { continue }
                        let nullsFirst = o.nullsFirst ?? !o.descending
                        return x.isNull ? nullsFirst : !nullsFirst
                    }
                    let c: Int
                    do throws(SQLError) {
                        c = try Value.compare(x, y) ?? 0
                    } catch {
                        failure = error
                        return a < b
                    }
                    if c != 0 { return o.descending ? c > 0 : c < 0 }
                }
                return a < b
            }
            if let failure { throw failure }
            indices = perm.map { indices[$0] }
        }
        let lo = min(offset, indices.count)
        let hi = limit.map { min(indices.count, lo + $0) } ?? indices.count
        var rows: [Row] = []
        rows.reserveCapacity(hi - lo)
        for r in indices[lo..<hi] {
            var out: Row = []
            out.reserveCapacity(outputs.count)
            for o in outputs {
                if let i = o.index {
                    out.append(rel.value(r, i))
                } else if let e = o.expr {
                    out.append(text(try eval(e, rel, row: r), o.column.type))
                } else {
                    out.append(o.constant)
                }
            }
            rows.append(out)
        }
        return ResultSet(columns: outputs.map(\.column), materialized: rows)
    }

    // MARK: DESCRIBE HISTORY

    static let historyColumns: [ResultColumn] = [
        ResultColumn(name: "version", type: .bigint),
        ResultColumn(name: "timestamp", type: .timestamp),
        ResultColumn(name: "userId", type: .string),
        ResultColumn(name: "userName", type: .string),
        ResultColumn(name: "operation", type: .string),
        ResultColumn(name: "operationParameters", type: .mapStringString),
        ResultColumn(name: "job", type: try! SQLType(parsing: "STRUCT<jobId: STRING, jobName: STRING, jobRunId: STRING, runId: STRING, jobOwnerId: STRING, triggerType: STRING>")),
        ResultColumn(name: "notebook", type: try! SQLType(parsing: "STRUCT<notebookId: STRING>")),
        ResultColumn(name: "clusterId", type: .string),
        ResultColumn(name: "readVersion", type: .bigint),
        ResultColumn(name: "isolationLevel", type: .string),
        ResultColumn(name: "isBlindAppend", type: .boolean),
        ResultColumn(name: "operationMetrics", type: .mapStringString),
        ResultColumn(name: "userMetadata", type: .string),
        ResultColumn(name: "engineInfo", type: .string),
    ]

    func describeHistory(_ ref: NameRef, limit: Expr?) throws(SQLError) -> ResultSet {
        let name = qualify(ref)
        let t = try lookup(name, offset: ref.offset)
        guard t.isDelta else {
            throw SQLError("DELTA_CANNOT_DESCRIBE_VIEW_HISTORY", "42809", "Cannot describe the history of a view.")
        }
        let n = try limit.map { e throws(SQLError) in try intArgument(e, what: "limit") } ?? Int.max
        var rows: [Row] = []
        for v in t.versions.reversed() {
            if rows.count >= n { break }
            rows.append(Self.historyRow(v, table: t))
        }
        return ResultSet(columns: Self.historyColumns, materialized: rows)
    }

    static func jsonMap(_ pairs: [(String, String?)]) -> String {
        var w = JSONWriter()
        w.beginObject()
        for (k, v) in pairs {
            w.key(k)
            w.string(v)
        }
        w.endObject()
        return String(decoding: w.bytes, as: UTF8.self)
    }

    static func historyRow(_ v: VersionInfo, table t: TableState) -> Row {
        // CREATE TABLE records every property; SET TBLPROPERTIES the ones it set.
        let props = v.version == 0 ? v.properties : v.properties.filter { t.versions[v.version - 1].properties[$0.key] != $0.value }
        let propsJSON = jsonMap(props.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
        let rows = v.insertCount + v.updateCount
        var params: [(String, String?)]
        var metrics: [(String, String?)]
        var blindAppend = false
        switch v.operation.uppercased() {
        case "CREATE TABLE", "CREATE OR REPLACE TABLE", "CREATE TABLE AS SELECT":
            params = [
                ("partitionBy", "[]"), ("clusterBy", "[]"), ("description", nil), ("isManaged", String(t.tableType == "MANAGED")),
                ("properties", propsJSON), ("statsOnLoad", "false"),
            ]
            metrics = v.insertCount > 0 ? [("numFiles", "1"), ("numOutputRows", String(v.insertCount))] : []
            blindAppend = true
        case "WRITE":
            params = [("mode", "Append"), ("statsOnLoad", "false"), ("partitionBy", "[]")]
            metrics = [("numFiles", String(max(1, v.insertCount / 100_000))), ("numOutputRows", String(v.insertCount)),
                       ("numOutputBytes", String(v.insertCount * 180))]
            blindAppend = v.updateCount == 0 && v.deleteCount == 0
        case "MERGE":
            params = [
                ("predicate", "[\"(participant_id#1 = participant_id#2)\"]"), ("matchedPredicates", "[{\"actionType\":\"update\"}]"),
                ("notMatchedPredicates", "[{\"actionType\":\"insert\"}]"), ("notMatchedBySourcePredicates", "[]"),
            ]
            metrics = [
                ("numTargetRowsInserted", String(v.insertCount)), ("numTargetRowsUpdated", String(v.updateCount)),
                ("numTargetRowsDeleted", String(v.deleteCount)), ("numSourceRows", String(rows + v.deleteCount)),
                ("numOutputRows", String(rows)), ("numTargetChangeFilesAdded", "1"),
            ]
        case "UPDATE":
            params = [("predicate", "[\"true\"]")]
            metrics = [("numUpdatedRows", String(v.updateCount)), ("numAddedChangeFiles", "1")]
        case "DELETE":
            params = [("predicate", "[\"true\"]")]
            metrics = [("numDeletedRows", String(v.deleteCount)), ("numAddedChangeFiles", "1")]
        case "SET TBLPROPERTIES":
            params = [("properties", propsJSON)]
            metrics = []
        case _ where v.alter != nil:
            params = Self.alterParameters(v.alter!, table: t, version: v.version)
            metrics = []
        default:
            params = []
            metrics = [
                ("numOutputRows", String(rows)), ("numDeletedRows", String(v.deleteCount)),
            ]
        }
        let userId = String(StableHash.hash(Array(v.userName.utf8)) % 9_000_000_000_000_000 + 1_000_000_000_000_000)
        return [
            String(v.version), Timestamp.format(millis: v.timestampMillis), userId, v.userName, v.operation,
            jsonMap(params), nil, nil, nil, v.version == 0 ? nil : String(v.version - 1),
            v.version == 0 ? "Serializable" : "WriteSerializable", blindAppend ? "true" : "false", jsonMap(metrics), nil,
            "Databricks-Runtime/15.4.x-photon-scala2.12",
        ]
    }

    /// `operationParameters` of a schema change, as Delta's `AddColumns`, `RenameColumn`, `DropColumns` and
    /// `ChangeColumn` operations record them.
    static func alterParameters(_ a: Commit.Alter, table t: TableState, version: Int) -> [(String, String?)] {
        if let r = a.renameColumn { return [("oldColumnPath", r.from), ("newColumnPath", r.to)] }
        let schema = t.schema(at: version)
        var w = JSONWriter()
        if let add = a.addColumns {
            w.beginArray()
            for c in add {
                w.beginObject()
                w.key("column")
                Schema.writeField(c, (try? SQLType(parsing: c.type)) ?? .string, to: &w)
                w.endObject()
            }
            w.endArray()
            return [("columns", String(decoding: w.bytes, as: UTF8.self))]
        }
        if let drop = a.dropColumns {
            w.beginArray()
            for d in drop { w.string(d) }
            w.endArray()
            return [("columns", String(decoding: w.bytes, as: UTF8.self))]
        }
        if let c = a.changeColumnType,
            let i = schema.columns.firstIndex(where: { $0.name.caseInsensitiveCompare(c.name) == .orderedSame })
        {
            Schema.writeField(schema.columns[i], schema.types[i], to: &w)
            return [("column", String(decoding: w.bytes, as: UTF8.self))]
        }
        return []
    }

    // MARK: DESCRIBE TABLE / SHOW COLUMNS

    /// Spark's simple type string: `bigint`, `decimal(10,2)`, `map<string,string>`.
    static func simpleTypeString(_ t: SQLType) -> String {
        t.text.lowercased().replacingOccurrences(of: ", ", with: ",").replacingOccurrences(of: ": ", with: ":")
    }

    func describeTable(_ ref: NameRef, namesOnly: Bool) throws(SQLError) -> ResultSet {
        let name = qualify(ref)
        let t = try lookup(name, offset: ref.offset)
        let cols: [(String, SQLType, String?)] =
            t.isView
            ? try viewColumns(t).map { ($0.name, $0.type, nil) }
            : zip(t.columns, t.columnTypes).map { ($0.name, $1, $0.comment) }
        if namesOnly {
            return ResultSet(columns: [ResultColumn(name: "col_name", type: .string)], materialized: cols.map { [$0.0] })
        }
        return ResultSet(
            columns: Self.stringColumns(["col_name", "data_type", "comment"]),
            materialized: cols.map { [$0.0, Self.simpleTypeString($0.1), $0.2] })
    }

    // MARK: SHOW

    var visibleTables: [TableState] {
        tables.values.filter { bypass || access.canSee($0.name) }.sorted { $0.name.key < $1.name.key }
    }

    var catalogs: [String] {
        var seen: [String: String] = [:]
        for t in tables.values where seen[t.name.catalog.lowercased()] == nil { seen[t.name.catalog.lowercased()] = t.name.catalog }
        return seen.values.filter { access.canSeeCatalog($0) }.sorted()
    }

    func showCatalogs(like: String?) -> ResultSet {
        let rows: [Row] = catalogs.filter { like == nil || showLike($0, like!) }.map { [$0] }
        return ResultSet(columns: [ResultColumn(name: "catalog", type: .string)], materialized: rows)
    }

    func schemas(in catalog: String) -> [String] {
        var seen: [String: String] = [:]
        for t in tables.values where t.name.catalog.lowercased() == catalog.lowercased() {
            seen[t.name.schema.lowercased()] = t.name.schema
        }
        var out = seen.values.filter { access.canSeeSchema(catalog, $0) }
        if access.canSeeCatalog(catalog) { out.append("information_schema") }
        return out.sorted()
    }

    func showSchemas(_ cat: NameRef?, like: String?) throws(SQLError) -> ResultSet {
        let catalog = cat?.parts.joined(separator: ".") ?? defaultCatalog
        guard catalogs.contains(where: { $0.lowercased() == catalog.lowercased() }) else {
            throw SQLError("NO_SUCH_CATALOG_EXCEPTION", "42704", "Catalog '\(catalog)' was not found. Please verify the catalog name and then retry the query or command again.")
        }
        let rows: [Row] = schemas(in: catalog).filter { like == nil || showLike($0, like!) }.map { [$0] }
        return ResultSet(columns: [ResultColumn(name: "databaseName", type: .string)], materialized: rows)
    }

    func showTables(_ sch: NameRef?, like: String?) throws(SQLError) -> ResultSet {
        let (catalog, schema): (String, String) = {
            guard let sch else { return (defaultCatalog, defaultSchema) }
            return sch.parts.count >= 2 ? (sch.parts[0], sch.parts[1]) : (defaultCatalog, sch.parts[0])
        }()
        guard access.canSeeSchema(catalog, schema) || schema.lowercased() == "information_schema",
            tables.values.contains(where: {
                $0.name.catalog.lowercased() == catalog.lowercased() && $0.name.schema.lowercased() == schema.lowercased()
            }) || schema.lowercased() == "information_schema"
        else {
            throw SQLError(
                "SCHEMA_NOT_FOUND", "42704",
                "The schema `\(catalog)`.`\(schema)` cannot be found. Verify the spelling and correctness of the schema and catalog.")
        }
        let rows: [Row] = visibleTables.filter {
            $0.name.catalog.lowercased() == catalog.lowercased() && $0.name.schema.lowercased() == schema.lowercased()
                && (like == nil || showLike($0.name.table, like!))
        }.map { [$0.name.schema, $0.name.table, "false"] }
        return ResultSet(
            columns: [
                ResultColumn(name: "database", type: .string), ResultColumn(name: "tableName", type: .string),
                ResultColumn(name: "isTemporary", type: .boolean),
            ], materialized: rows)
    }

    func showTblProperties(_ ref: NameRef, key: String?) throws(SQLError) -> ResultSet {
        let name = qualify(ref)
        let t = try lookup(name, offset: ref.offset)
        var props = t.properties
        if t.isDelta {
            props["delta.minReaderVersion"] = props["delta.minReaderVersion"] ?? "1"
            props["delta.minWriterVersion"] = props["delta.minWriterVersion"] ?? "4"
        }
        let rows: [Row]
        if let key {
            rows = [[key, props[key] ?? "Table \(t.name.description) does not have property: \(key)"]]
        } else {
            rows = props.sorted { $0.key < $1.key }.map { [$0.key, $0.value] }
        }
        return ResultSet(
            columns: [ResultColumn(name: "key", type: .string), ResultColumn(name: "value", type: .string)],
            materialized: rows)
    }
}

func levenshtein(_ a: String, _ b: String) -> Int {
    let x = Array(a.utf8), y = Array(b.utf8)
    if x.isEmpty { return y.count }
    if y.isEmpty { return x.count }
    var prev = Array(0...y.count)
    var cur = [Int](repeating: 0, count: y.count + 1)
    for i in 1...x.count {
        cur[0] = i
        for j in 1...y.count {
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x[i - 1] == y[j - 1] ? 0 : 1))
        }
        swap(&prev, &cur)
    }
    return prev[y.count]
}
