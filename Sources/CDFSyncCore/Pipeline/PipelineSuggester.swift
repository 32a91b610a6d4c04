import Foundation

/// Suggests a pipeline for a source from its columns and a sample of their values (no I/O; the engine's
/// `SourceProfiler` reads the profile from the warehouse).
///
/// Each field is matched by name — its own name, a synonym (`mobile` → phone), a name containing one
/// (`work_phone`), or a weak name (`id`) — and checked by type and values with the engine's own rules: a column
/// "looks like phone numbers" when its values normalise to E.164 (``Normalize/phone(_:defaultRegion:)``), like
/// emails when ``Normalize/email(_:)`` accepts them, like countries when ``Normalize/country(_:)`` does. A column
/// with the right values and no name evidence is offered for email and phone (and country, uncertain). Where two
/// columns fit equally well nothing is chosen: the field is `ambiguous` with both. Fields take columns in order of
/// confidence, so a column serves one field.
public enum PipelineSuggester {
    /// What the suggester is told besides the profile.
    public struct Options: Sendable, Equatable {
        public var kind: Pipeline.Kind
        /// The region national phone numbers are read in (`validation.default_phone_region`); nil: only numbers with a
        /// country code count as phone numbers.
        public var defaultPhoneRegion: String?
        /// Events: the participants pipeline whose external ids `user_id` holds.
        public var identityPipeline: String?
        /// The pipeline's name; nil: derived from the table's (``pipelineName(for:)``).
        public var name: String?

        public init(kind: Pipeline.Kind = .participants, defaultPhoneRegion: String? = nil,
                    identityPipeline: String? = nil, name: String? = nil) {
            self.kind = kind
            self.defaultPhoneRegion = defaultPhoneRegion
            self.identityPipeline = identityPipeline
            self.name = name
        }
    }

    /// The suggestion for `profile`.
    public static func suggest(_ profile: SourceProfile, options: Options = Options()) -> PipelineSuggestion {
        let region = options.defaultPhoneRegion?.uppercased()
        let columns = profile.columns.map { ColumnFacts($0, region: region) }
        let rules = options.kind == .participants ? FieldRule.participants : FieldRule.events
        var taken = Set<String>()
        var decided: [String: PipelineSuggestion.Field] = [:]
        var pending = rules
        // Fields take columns in order of confidence: the surest pairing first, then the others without its column.
        while !pending.isEmpty {
            let decisions = pending.map { decide($0, columns.filter { !taken.contains($0.key) }, profile) }
            let best = decisions.indices.filter { decisions[$0].status == .suggested }
                .max { decisions[$0].confidence < decisions[$1].confidence }
            guard let best, let column = decisions[best].column else {
                for (rule, d) in zip(pending, decisions) { decided[rule.field] = d }
                break
            }
            decided[pending[best].field] = decisions[best]
            taken.insert(column.lowercased())
            pending.remove(at: best)
        }
        var fields = rules.compactMap { decided[$0.field] }

        // Consent: the consent_status field's column, with its values read; for an ambiguous one, each candidate's.
        var consent: PipelineSuggestion.Consent?
        var consentAlternatives: [PipelineSuggestion.Consent] = []
        if let i = fields.firstIndex(where: { $0.field == "consent_status" }) {
            func facts(_ name: String) -> ColumnFacts? { columns.first { $0.name == name } }
            if let column = fields[i].column, let c = facts(column) {
                let values = consentValues(c)
                consent = values
                if values.status != .suggested && fields[i].status == .suggested {
                    fields[i].status = .uncertain
                    fields[i].reason += "; \(values.reason)"
                }
            } else if fields[i].status == .ambiguous {
                let fitting = fields[i].candidates.filter(\.fits)
                consentAlternatives = fitting.filter { $0.nameTier == fitting.first?.nameTier }
                    .compactMap { facts($0.column) }.map(consentValues)
            }
        }

        var notes: [String] = []
        if options.kind == .events, options.identityPipeline == nil,
            let user = fields.first(where: { $0.field == "user_id" }), user.status == .suggested
        {
            notes.append("user_id is left out: an events pipeline that maps it names the participants pipeline whose "
                + "external ids it holds (identity_pipeline; pipeline init --identity-pipeline NAME)")
        }
        if options.kind == .participants, consent == nil, consentAlternatives.isEmpty {
            notes.append("no column looks like consent: every row is imported as contactable; if the source records "
                + "consent, add a consent block (column and opted_in values)")
        }

        let mode = chooseMode(profile, fields: fields, columns: columns, kind: options.kind)
        let used = Set(fields.filter { $0.status == .suggested }.compactMap { $0.column?.lowercased() })
            .union(consent.map { [$0.column.lowercased()] } ?? [])
            .union(mode.mode == .watermark ? [mode.cursor?.lowercased()].compactMap { $0 } : [])
        let attributes = profile.columns.filter { !used.contains($0.name.lowercased()) }.map { c in
            let kind = ColumnKind(sqlType: c.type)
            let name = attributeName(c.name)
            return PipelineSuggestion.Attribute(column: c.name, name: name == c.name ? nil : name,
                type: kind.attributeType, sourceType: c.type)
        }
        return PipelineSuggestion(
            source: profile.source, kind: options.kind, name: options.name ?? pipelineName(for: profile.source),
            tableType: profile.tableType, changeDataFeed: profile.changeDataFeed, columnCount: profile.columns.count,
            sampledRows: profile.sampledRows, fields: fields, consent: consent,
            consentAlternatives: consentAlternatives, attributes: attributes, mode: mode,
            defaultPhoneRegion: region, identityPipeline: options.identityPipeline, notes: notes)
    }

    // MARK: - One field

    static func decide(_ rule: FieldRule, _ columns: [ColumnFacts], _ profile: SourceProfile)
        -> PipelineSuggestion.Field
    {
        var candidates = columns.compactMap { rule.evaluate($0, sampledRows: profile.sampledRows) }
        // Values alone, for a field that allows it: only among columns no name points elsewhere from.
        if let shapeOnly = rule.valuesAlone {
            let byValues = columns.filter { c in !candidates.contains { $0.column == c.name } }
                .compactMap { shapeOnly($0, rule) }
            candidates += byValues
        }
        candidates.sort { a, b in
            (a.fits ? 1 : 0, a.nameTier, a.confidence) > (b.fits ? 1 : 0, b.nameTier, b.confidence)
        }
        let fitting = candidates.filter(\.fits)
        guard let top = fitting.first else {
            let near = candidates.prefix(4).map { "\(display($0.column)) (\($0.brief))" }
            let reason = near.isEmpty ? "no matching column" : "no column fits — " + near.joined(separator: ", ")
            return .init(field: rule.field, status: .notFound, column: nil, confidence: 0, reason: reason,
                candidates: candidates)
        }
        let peers = fitting.filter { $0.nameTier == top.nameTier }
        if peers.count > 1 {
            let list = peers.prefix(5).map { "\(display($0.column)) (\($0.brief))" }.joined(separator: ", ")
            return .init(field: rule.field, status: .ambiguous, column: nil, confidence: top.confidence,
                reason: "ambiguous — \(list)", candidates: candidates)
        }
        var reason = top.reason
        let others = fitting.dropFirst().prefix(3)
        if !others.isEmpty {
            reason += "; also fits: " + others.map { "\(display($0.column)) (\($0.brief))" }.joined(separator: ", ")
        }
        let status: PipelineSuggestion.Status = top.confidence >= 0.55 ? .suggested : .uncertain
        return .init(field: rule.field, status: status, column: top.column, confidence: top.confidence,
            reason: reason, candidates: candidates)
    }

    // MARK: - Consent values

    /// Reads the consent column's distinct sampled values: which mean opted in, which not, which are unknown.
    static func consentValues(_ c: ColumnFacts) -> PipelineSuggestion.Consent {
        let inverted = ConsentVocabulary.isInvertedName(c.tokens)
        var optedIn: [PipelineSuggestion.ValueCount] = []
        var notOptedIn: [PipelineSuggestion.ValueCount] = []
        var unknown: [PipelineSuggestion.ValueCount] = []
        for d in c.distinct {
            let vc = PipelineSuggestion.ValueCount(value: d.spelling, count: d.count)
            switch ConsentVocabulary.meaning(d.spelling, inverted: inverted) {
            case true?: optedIn.append(vc)
            case false?: notOptedIn.append(vc)
            case nil: unknown.append(vc)
            }
        }
        let seen = c.nonEmpty
        var reason: String
        let status: PipelineSuggestion.Status
        if seen == 0 {
            reason = "no values sampled: give the opted-in values yourself"
            status = .uncertain
        } else if optedIn.isEmpty {
            reason = "none of its \(c.distinct.count) sampled value(s) reads as opted in"
            status = .uncertain
        } else if c.distinctOverflow {
            reason = "more than \(ColumnFacts.distinctLimit) distinct values: not a consent status"
            status = .uncertain
        } else {
            let opted = optedIn.reduce(0) { $0 + $1.count }
            reason = "\(percent(opted, of: seen)) of \(count(seen)) sampled values read as opted in"
            status = .suggested
        }
        if inverted { reason += " (the column's name says opted out: \"false\" / \"no\" mean opted in)" }
        return .init(column: c.name, optedIn: optedIn.map(\.value), notOptedIn: notOptedIn, unrecognised: unknown,
            inverted: inverted, status: status, reason: reason)
    }

    // MARK: - Mode

    static func chooseMode(_ profile: SourceProfile, fields: [PipelineSuggestion.Field], columns: [ColumnFacts],
                           kind: Pipeline.Kind) -> PipelineSuggestion.ModeChoice
    {
        // The cursor: the last_updated column (participants), else a timestamp named like a last-modified time,
        // else (events, which are only ever inserted) the event's timestamp.
        var cursor: String?
        var cursorWhy = ""
        var cursorCandidates: [String] = []
        if let f = fields.first(where: { $0.field == "last_updated" }) {
            if f.status == .suggested { cursor = f.column } else {
                cursorCandidates = f.candidates.filter(\.fits).map(\.column)
            }
            cursorWhy = "a last-modified time"
        } else {
            let d = decide(FieldRule.lastUpdated, columns, profile)
            if d.status == .suggested, let c = d.column {
                cursor = c
                cursorWhy = "a last-modified time"
            } else if let t = fields.first(where: { $0.field == "timestamp" }), t.status == .suggested {
                cursor = t.column
                cursorWhy = "the event time (raise watermark.lookback_seconds if events arrive late)"
            } else {
                cursorCandidates = d.candidates.filter(\.fits).map(\.column)
            }
        }
        let cursorNote = cursor.map { "\(display($0)) is \(cursorWhy)" }
            ?? (cursorCandidates.isEmpty ? "no column looks like a last-modified time"
                : "no single cursor column (candidates: \(cursorCandidates.map(display).joined(separator: ", ")))")
        if profile.isView {
            return .init(mode: cursor == nil ? .snapshot : .watermark, cursor: cursor,
                reason: "\(describe(tableType: profile.tableType)) has no change data feed; \(cursorNote)",
                cursorCandidates: cursorCandidates)
        }
        switch profile.changeDataFeed {
        case true?:
            return .init(mode: .cdf, cursor: nil, reason: "delta.enableChangeDataFeed is true", cursorCandidates: [])
        case nil where profile.format == nil || profile.format?.uppercased() == "DELTA":
            return .init(mode: .auto, cursor: cursor,
                reason: "the table's properties could not be read: auto decides at each run", cursorCandidates: [])
        default:
            let off = profile.format.map { $0.uppercased() != "DELTA" ? "a \($0) table has no change data feed" : nil }
                ?? nil
            return .init(mode: cursor == nil ? .snapshot : .watermark, cursor: cursor,
                reason: "\(off ?? "delta.enableChangeDataFeed is not true"); \(cursorNote)",
                cursorCandidates: cursorCandidates)
        }
    }

    /// `a managed table`, `a view`, `a materialized view`, `a table or view` (unknown).
    static func describe(tableType: String?) -> String {
        guard let t = tableType?.uppercased() else { return "a table or view" }
        switch t {
        case "MANAGED", "EXTERNAL", "FOREIGN": return "a \(t.lowercased()) table"
        case "VIEW": return "a view"
        default: return "a " + t.lowercased().replacingOccurrences(of: "_", with: " ")
        }
    }

    // MARK: - Names

    /// A pipeline name from the table's: ASCII letters and digits, `-`, `_` and `.` (accents dropped, anything
    /// else a `-`), not starting with `.` or `-`, at most 100 bytes; `pipeline` when nothing is left.
    public static func pipelineName(for source: QualifiedName) -> String {
        for text in [source.table, "\(source.schema)-\(source.table)"] {
            let name = nameCharacters(text)
            if !name.isEmpty { return name }
        }
        return "pipeline"
    }

    static func nameCharacters(_ text: String) -> String {
        var out = ""
        var dash = false
        for scalar in ColumnName.folded(text).unicodeScalars {
            let v = scalar.value
            let keep = (v >= 0x61 && v <= 0x7A) || (v >= 0x30 && v <= 0x39) || v == 0x5F || v == 0x2E || v == 0x2D
            if keep && v != 0x2D {
                if dash && !out.isEmpty { out += "-" }
                dash = false
                out.unicodeScalars.append(scalar)
            } else {
                dash = true
            }
        }
        while let f = out.first, f == "." || f == "-" { out.removeFirst() }
        return String(out.prefix(100))  // ASCII: characters are bytes
    }

    /// An attribute's output name: the column's, or its words joined by `_` when it holds anything but letters,
    /// digits and `_`.
    static func attributeName(_ column: String) -> String {
        let plain = column.unicodeScalars.allSatisfy { s in
            (s.properties.isAlphabetic || (s.value >= 0x30 && s.value <= 0x39) || s == "_")
        }
        if plain { return column }
        let joined = ColumnName.words(column).joined(separator: "_")
        return joined.isEmpty ? column : joined
    }

    /// The source as a pipeline file writes it: `catalog.schema.table`, backtick-quoting a part that holds more than
    /// ASCII letters, digits and `_` (a backtick inside doubled), so it reads back as the same three names.
    public static func sourceText(_ name: QualifiedName) -> String {
        [name.catalog, name.schema, name.table].map { part in
            let plain = !part.isEmpty && part.utf8.allSatisfy { b in
                (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || (b >= 0x30 && b <= 0x39) || b == 0x5F
            }
            return plain ? part : SQL.quoteIdentifier(part)
        }.joined(separator: ".")
    }

    // MARK: - Text

    /// A column name for a comment: as it is when plain, else YAML-quoted (control characters escaped).
    static func display(_ column: String) -> String { YAMLText.isPlain(column) ? column : YAMLText.quoted(column) }

    /// `98 %`: rounded down, so that `100 %` means all.
    static func percent(_ part: Int, of whole: Int) -> String {
        guard whole > 0 else { return "0 %" }
        return "\(part.multipliedReportingOverflow(by: 100).partialValue / whole) %"
    }

    /// `1,000`.
    static func count(_ n: Int) -> String {
        let digits = String(n.magnitude)
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out += "," }
            out.append(c)
        }
        return (n < 0 ? "-" : "") + out
    }
}

// MARK: - Column facts

/// A column's name words and what its sampled values look like, computed once.
struct ColumnFacts {
    static let distinctLimit = 50

    let name: String
    let type: String
    let kind: ColumnKind
    /// Lower-cased words of the name, accents dropped (`E-Mail Address` → e, mail, address; `firstName` → first,
    /// name).
    let tokens: [String]
    /// Non-null, non-blank sampled values.
    let nonEmpty: Int
    let blank: Int
    let emails: Int
    let phones: Int
    /// Digits-only numbers without a country code (national numbers), when no region is given.
    let nationalPhones: Int
    let countries: Int
    let timestamps: Int
    /// Every non-empty sampled value differs from the others.
    let allDistinct: Bool
    /// Distinct values compared trimmed and case-insensitively, each with its first spelling and count, most frequent
    /// first; at most ``distinctLimit``.
    let distinct: [(spelling: String, count: Int)]
    /// More distinct values than ``distinctLimit``.
    let distinctOverflow: Bool

    var key: String { name.lowercased() }

    init(_ c: SourceProfile.Column, region: String?) {
        name = c.name
        type = c.type
        kind = ColumnKind(sqlType: c.type)
        tokens = ColumnName.words(c.name)
        var nonEmpty = 0, blank = 0, emails = 0, phones = 0, national = 0, countries = 0, timestamps = 0
        var seen = Set<String>()
        var allDistinct = true
        var counts: [String: (spelling: String, count: Int, first: Int)] = [:]
        var overflow = false
        let textual = kind == .string || kind == .other
        for (row, value) in c.values.enumerated() {
            guard let value else {
                blank += 1
                continue
            }
            let trimmed = String(value.trimmingWhitespace())
            if trimmed.isEmpty {
                blank += 1
                continue
            }
            nonEmpty += 1
            if !seen.insert(trimmed).inserted { allDistinct = false }
            let folded = trimmed.lowercased()
            if let e = counts[folded] {
                counts[folded] = (e.spelling, e.count + 1, e.first)
            } else if counts.count < Self.distinctLimit {
                counts[folded] = (trimmed, 1, row)
            } else {
                overflow = true
            }
            if textual {
                if case .value = Normalize.email(trimmed) { emails += 1 }
                if case .value = Normalize.phone(trimmed, defaultRegion: region) {
                    phones += 1
                } else if region == nil, Self.isNationalNumber(trimmed) {
                    national += 1
                }
                if case .value = Normalize.country(trimmed) { countries += 1 }
                if Timestamps.micros(trimmed) != nil { timestamps += 1 }
            }
        }
        self.nonEmpty = nonEmpty
        self.blank = blank
        self.emails = emails
        self.phones = phones
        self.nationalPhones = national
        self.countries = countries
        self.timestamps = timestamps
        self.allDistinct = allDistinct
        distinct = counts.values.sorted { ($0.count, -$0.first) > ($1.count, -$1.first) }
            .map { ($0.spelling, $0.count) }
        distinctOverflow = overflow
    }

    /// A number written without a country code: 6 to 12 digits with separators, not starting with `+` or `00`.
    static func isNationalNumber(_ s: String) -> Bool {
        var digits = 0
        for (i, b) in s.utf8.enumerated() {
            if b >= 0x30 && b <= 0x39 {
                digits += 1
            } else if b == 0x20 || b == 0x2D || b == 0x2E || b == 0x28 || b == 0x29 || b == 0x2F {
                continue
            } else {
                return false
            }
            if i == 1 && s.utf8.first == 0x30 && b == 0x30 { return false }  // 00…: international
        }
        return (6...12).contains(digits)
    }
}

/// Words of column names.
enum ColumnName {
    /// Lower-cased words, accents dropped: split at anything not a letter or digit, and where a lower-case letter or
    /// digit is followed by an upper-case one (`firstName`, `Email2Address`) or an acronym ends (`HTTPServer`).
    static func words(_ name: String) -> [String] {
        var words: [String] = []
        var current: [Character] = []
        let chars = Array(folded(name, lowercase: false))
        func flush() {
            if !current.isEmpty { words.append(String(current).lowercased()) }
            current = []
        }
        for (i, c) in chars.enumerated() {
            guard c.isLetter || c.isNumber else {
                flush()
                continue
            }
            if let prev = current.last {
                let next = i + 1 < chars.count ? chars[i + 1] : nil
                if c.isUppercase && (prev.isLowercase || prev.isNumber) { flush() }
                else if c.isUppercase && prev.isUppercase, let n = next, n.isLowercase { flush() }
            }
            current.append(c)
        }
        flush()
        return words
    }

    /// `text` with accents dropped (é → e, ß stays), lower-cased unless told not to.
    static func folded(_ text: String, lowercase: Bool = true) -> String {
        var out = String.UnicodeScalarView()
        for s in text.decomposedStringWithCanonicalMapping.unicodeScalars
        where s.properties.generalCategory != .nonspacingMark {
            out.append(s)
        }
        let s = String(out)
        return lowercase ? s.lowercased() : s
    }
}

// MARK: - Field rules

/// How one field is recognised: names, the type it takes, what its values must look like.
struct FieldRule {
    enum Shape { case none, email, phone, country, timestamp, key, consent }

    let field: String
    /// Names that mean the field, as words joined by `_` (`email_address`); the field's own name is tier 3.
    let synonyms: Set<String>
    /// Word sequences whose presence in a name points at the field (`phone` in `work_phone`).
    let phrases: [[String]]
    /// Names that might mean it, and often do not (`id`).
    let weak: Set<String>
    let shape: Shape
    /// The column kinds the field takes.
    let kinds: Set<ColumnKind>
    /// The confidence of a column found by its values alone (nil: never by values alone).
    let valuesAloneBase: Double?

    init(_ field: String, synonyms: [String] = [], phrases: [String] = [], weak: [String] = [], shape: Shape = .none,
         kinds: Set<ColumnKind> = [.string, .other, .integer, .decimal], valuesAloneBase: Double? = nil) {
        self.field = field
        self.synonyms = Set(synonyms)
        self.phrases = phrases.map { $0.split(separator: "_").map(String.init) }
        self.weak = Set(weak)
        self.shape = shape
        self.kinds = kinds
        self.valuesAloneBase = valuesAloneBase
    }

    /// Words before a phrase that say the column belongs to someone or something else (`manager_email`): tier 1.
    static let otherParty: Set<String> = [
        "manager", "parent", "guardian", "emergency", "assistant", "referrer", "referral", "referred", "secondary",
        "alt", "alternate", "alternative", "old", "previous", "prev", "former", "backup", "billing", "company",
        "spouse", "partner", "contact2", "second", "other", "invoice", "shipping", "recruiter", "owner", "created",
        "sales", "agent", "support", "sender", "reply", "cc", "bcc",
    ]

    /// How strongly the column's name points at the field: 3, 2, 1 or 0 (see ``PipelineSuggestion/Candidate``).
    func nameTier(_ c: ColumnFacts) -> (tier: Int, why: String) {
        let key = c.tokens.joined(separator: "_")
        let compact = c.tokens.joined()
        let own = field.replacingOccurrences(of: "_", with: "")
        if key == field || compact == own { return (3, "name match") }
        if synonyms.contains(key)
            || synonyms.contains(where: { $0.replacingOccurrences(of: "_", with: "") == compact })
        {
            return (2, "synonym of \(field)")
        }
        for phrase in phrases {
            guard let at = Self.find(phrase, in: c.tokens) else {
                // One run-together word (`workphone`, `contactemail`): contains the phrase's letters.
                let p = phrase.joined()
                if c.tokens.count == 1, p.count >= 4, compact.contains(p), shape != .none {
                    return (2, "name contains '\(p)'")
                }
                continue
            }
            let before = c.tokens[..<at]
            if before.contains(where: Self.otherParty.contains) {
                return (1, "name contains '\(phrase.joined(separator: "_"))', qualified by "
                    + "'\(before.first { Self.otherParty.contains($0) } ?? "")'")
            }
            return (2, "name contains '\(phrase.joined(separator: "_"))'")
        }
        if weak.contains(key) { return (1, "generic name") }
        // A key's name often only ends like one (`respondent_uuid`, `account_id`): weak, and its values must be unique.
        if shape == .key, c.tokens.count > 1, let last = c.tokens.last, ["id", "uuid", "guid", "key"].contains(last) {
            return (1, "name ends in '\(last)'")
        }
        return (0, "no name match")
    }

    static func find(_ phrase: [String], in tokens: [String]) -> Int? {
        guard !phrase.isEmpty, phrase.count <= tokens.count else { return nil }
        for i in 0...(tokens.count - phrase.count) where Array(tokens[i..<(i + phrase.count)]) == phrase { return i }
        return nil
    }

    /// The candidate a column makes for this field by its name (nil when the name says nothing).
    func evaluate(_ c: ColumnFacts, sampledRows: Int) -> PipelineSuggestion.Candidate? {
        let (tier, why) = nameTier(c)
        guard tier > 0 else { return nil }
        // A qualified name (`manager_email`) is someone else's more often than not: offered, not chosen alone.
        let base: Double = tier == 1 ? (why.contains("qualified") ? 0.45 : 0.55) : (tier == 2 ? 0.8 : 0.93)
        return judge(c, tier: tier, base: base, why: why)
    }

    /// A candidate by values alone, for fields that allow it.
    var valuesAlone: ((ColumnFacts, FieldRule) -> PipelineSuggestion.Candidate?)? {
        guard let base = valuesAloneBase else { return nil }
        return { c, rule in
            let cand = rule.judge(c, tier: 0, base: base, why: "no name match")
            guard let cand, cand.fits else { return nil }
            return cand
        }
    }

    /// Checks type and values; returns the candidate with its confidence and reason.
    func judge(_ c: ColumnFacts, tier: Int, base: Double, why: String) -> PipelineSuggestion.Candidate? {
        func make(_ confidence: Double, _ reason: String, _ brief: String, fits: Bool) -> PipelineSuggestion.Candidate {
            .init(column: c.name, type: c.type, confidence: (min(max(confidence, 0), 0.99) * 100).rounded() / 100,
                reason: reason, brief: brief, fits: fits, nameTier: tier)
        }
        let typeName = c.type.uppercased()
        guard kinds.contains(c.kind) else {
            if shape == .timestamp, c.nonEmpty > 0, c.timestamps * 10 >= c.nonEmpty * 9 {
                // The engine compares cursors and event times as TIMESTAMP / DATE values (pipeline validate checks).
                return make(0, "\(why), but the column is \(typeName) holding timestamps as text: it needs a "
                    + "TIMESTAMP or DATE column (cast it in a view)", "\(typeName) of timestamps as text", fits: false)
            }
            return make(0, "\(why), but the column is \(typeName)", typeName, fits: false)
        }
        let n = c.nonEmpty
        let sampled = PipelineSuggester.count(n) + (c.blank > 0 ? " non-empty" : "")
        func share(_ part: Int) -> Double { n == 0 ? 0 : Double(part) / Double(n) }
        func shaped(_ part: Int, _ looks: String, _ short: String, needed: Double) -> PipelineSuggestion.Candidate {
            if n == 0 {
                return make(base - 0.15, "\(why); no values sampled to check", "no values sampled", fits: tier > 0)
            }
            let p = share(part)
            let pct = PipelineSuggester.percent(part, of: n)
            let reason = "\(why), \(pct) of \(sampled) sampled values \(looks)"
            guard p >= needed else { return make(base * p, reason, "\(pct) \(short)", fits: false) }
            let bonus = p >= 0.95 ? 0.05 : -0.1
            var r = reason
            if p < 0.95 {
                r += " — the other \(100 - Int(p * 100)) % would be invalid rows (validation.max_invalid_ratio)"
            }
            return make(base + bonus, r, "\(pct) \(short)", fits: true)
        }
        switch shape {
        case .none:
            return make(base, why, tier == 3 ? "name match" : why, fits: true)
        case .email:
            return shaped(c.emails, "look like emails", "email-shaped", needed: tier > 0 ? 0.8 : 0.9)
        case .phone:
            if n > 0, c.phones * 2 < n, c.nationalPhones * 2 >= n {
                let pct = PipelineSuggester.percent(c.nationalPhones, of: n)
                return make(base * 0.5,
                    "\(why), but \(pct) of \(sampled) sampled values are national numbers without a country code: "
                        + "give their region (pipeline init --phone-region GB; validation.default_phone_region)",
                    "\(pct) national numbers", fits: false)
            }
            return shaped(c.phones, "look like phone numbers (normalise to E.164)", "phone-shaped",
                needed: tier > 0 ? 0.8 : 0.9)
        case .country:
            return shaped(c.countries, "are ISO 3166 country codes or names", "country codes or names",
                needed: tier > 0 ? 0.8 : 0.95)
        case .timestamp:
            return make(base, "\(why), \(typeName) column", typeName, fits: true)
        case .key:
            if n == 0 {
                return make(base - 0.15, "\(why); no values sampled to check", "no values sampled", fits: true)
            }
            if !c.allDistinct {
                return make(base * 0.5, "\(why), but its sampled values repeat: not a key", "values repeat",
                    fits: false)
            }
            if c.blank > 0 {
                return make(base - 0.1,
                    "\(why), \(sampled) sampled values distinct; \(PipelineSuggester.count(c.blank)) empty (those rows "
                        + "would be invalid)", "distinct, some empty", fits: true)
            }
            return make(base + 0.05, "\(why), all \(sampled) sampled values distinct and non-empty", "distinct",
                fits: true)
        case .consent:
            if n == 0 {
                return make(base - 0.15, "\(why); no values sampled to check", "no values sampled", fits: true)
            }
            let inverted = ConsentVocabulary.isInvertedName(c.tokens)
            let known = c.distinct.filter { ConsentVocabulary.meaning($0.spelling, inverted: inverted) != nil }
                .reduce(0) { $0 + $1.count }
            let specific = c.distinct.contains { ConsentVocabulary.isSpecific($0.spelling) }
            let p = share(known)
            let pct = PipelineSuggester.percent(known, of: n)
            let distinct = (c.distinctOverflow ? "over \(ColumnFacts.distinctLimit)" : "\(c.distinct.count)")
                + " distinct"
            let reason = "\(why), \(distinct) values, \(pct) of \(sampled) sampled values are consent words"
            if tier == 0 {
                guard p >= 0.95, specific, !c.distinctOverflow, c.distinct.count <= 20 else { return nil }
                return make(base, reason, "\(pct) consent words", fits: true)
            }
            guard p >= 0.5, !c.distinctOverflow else {
                return make(base * p, reason, "\(pct) consent words", fits: false)
            }
            return make(base + (p >= 0.95 ? 0.05 : -0.1), reason, "\(pct) consent words", fits: true)
        }
    }

    // MARK: The fields

    static let textKinds: Set<ColumnKind> = [.string, .other]
    static let timeKinds: Set<ColumnKind> = [.timestamp, .date]
    static let keyKinds: Set<ColumnKind> = [.string, .integer, .decimal, .other]

    static let lastUpdated = FieldRule("last_updated",
        synonyms: ["updated_at", "updated", "last_updated_at", "last_modified", "last_modified_at", "modified",
                   "modified_at", "modified_on", "updated_on", "last_update", "last_updated_on", "update_time",
                   "updated_time", "modification_time", "modified_time", "last_modified_time", "changed_at",
                   "last_changed", "last_changed_at", "changed_on", "row_updated_at", "record_updated_at",
                   "updated_date", "modified_date", "last_modified_date", "update_date", "ts_updated", "dt_updated",
                   "etl_updated_at", "system_modstamp", "lastmodifieddate", "_updated_at"],
        phrases: ["updated", "modified", "last_modified", "changed"], shape: .timestamp, kinds: timeKinds)

    static let participants: [FieldRule] = [
        FieldRule("external_id",
            synonyms: ["customer_id", "participant_id", "user_id", "member_id", "contact_id", "person_id",
                       "respondent_id", "panelist_id", "panellist_id", "subscriber_id", "external_id", "ext_id",
                       "customer_number", "participant_number", "member_number", "customer_key", "participant_key",
                       "contact_key", "userid", "uid", "crm_id", "patient_id", "subject_id", "external_key"],
            phrases: ["external_id", "participant_id", "customer_id"],
            weak: ["id", "uuid", "guid", "key", "pk", "record_id", "row_id"], shape: .key, kinds: keyKinds),
        FieldRule("first_name",
            synonyms: ["firstname", "first", "given_name", "givenname", "forename", "fname", "first_nm",
                       "christian_name", "given", "vorname", "prenom"],
            phrases: ["first_name", "given_name", "forename"], shape: .none, kinds: textKinds),
        FieldRule("last_name",
            synonyms: ["lastname", "surname", "family_name", "familyname", "lname", "last_nm", "last", "nachname",
                       "nom"],
            phrases: ["last_name", "surname", "family_name"], shape: .none, kinds: textKinds),
        FieldRule("email",
            synonyms: ["email_address", "mail", "e_mail", "e_mail_address", "email_addr", "mail_address",
                       "emailaddress", "email_id", "mail_id", "electronic_mail", "primary_email", "contact_email"],
            phrases: ["email", "e_mail", "mail"], shape: .email, kinds: textKinds, valuesAloneBase: 0.62),
        FieldRule("phone",
            synonyms: ["phone_number", "mobile", "mobile_phone", "mobile_number", "cell", "cell_phone", "cellphone",
                       "telephone", "tel", "phone_no", "msisdn", "mobile_no", "contact_phone", "primary_phone",
                       "telephone_number", "tel_no", "handy", "mobile_phone_number", "cell_number"],
            phrases: ["phone", "mobile", "telephone", "cell", "msisdn"], shape: .phone, kinds: textKinds,
            valuesAloneBase: 0.62),
        FieldRule("company",
            synonyms: ["organisation", "organization", "employer", "company_name", "org", "organisation_name",
                       "organization_name", "business", "business_name", "firm", "account_name", "employer_name",
                       "org_name"],
            phrases: ["company", "organisation", "organization", "employer"], shape: .none, kinds: textKinds),
        FieldRule("country",
            synonyms: ["country_code", "country_iso", "nation", "country_name", "iso_country", "country_iso2",
                       "country_iso_code", "ctry", "cntry", "country_of_residence", "residence_country", "land"],
            phrases: ["country"], shape: .country, kinds: textKinds, valuesAloneBase: 0.45),
        FieldRule("city",
            synonyms: ["town", "locality", "city_name", "municipality", "town_city", "stadt", "ville"],
            phrases: ["city", "town"], shape: .none, kinds: textKinds),
        FieldRule("job_title",
            synonyms: ["title", "job", "position", "role", "occupation", "jobtitle", "job_role", "designation",
                       "job_position", "job_name", "profession"],
            phrases: ["job_title", "jobtitle", "occupation"], shape: .none, kinds: textKinds),
        FieldRule("segment",
            synonyms: ["segment_name", "tier", "cohort", "customer_segment", "panel_segment", "audience",
                       "user_segment", "market_segment", "segmentation"],
            phrases: ["segment"], shape: .none, kinds: [.string, .other, .integer]),
        FieldRule("consent_status",
            synonyms: ["consent", "consent_state", "marketing_consent", "opt_in", "optin", "opted_in",
                       "opt_in_status", "subscription_status", "subscription", "email_consent", "gdpr_consent",
                       "contact_consent", "permission", "marketing_opt_in", "newsletter", "email_opt_in",
                       "consent_given", "contactable", "can_contact", "opted_out", "opt_out", "optout", "unsubscribed",
                       "do_not_contact", "dnc", "do_not_email", "marketing_opt_out", "email_opt_out",
                       "marketing_permission", "research_consent"],
            phrases: ["consent", "opt_in", "optin", "opted_in", "subscription", "subscribed", "opt_out",
                      "opted_out", "unsubscribed", "do_not_contact"],
            shape: .consent, kinds: [.string, .boolean, .integer, .other], valuesAloneBase: 0.62),
        lastUpdated,
    ]

    static let events: [FieldRule] = [
        FieldRule("event_id",
            synonyms: ["event_uuid", "event_key", "message_id", "event_guid", "eventid", "activity_id",
                       "interaction_id", "log_id", "hit_id"],
            phrases: ["event_id"], weak: ["id", "uuid", "guid", "key", "pk", "record_id", "row_id"], shape: .key,
            kinds: keyKinds),
        FieldRule("name",
            synonyms: ["event_name", "event_type", "event", "action", "activity", "event_action", "activity_type",
                       "event_kind", "type", "kind", "eventname", "action_name"],
            phrases: ["event_name", "event_type"], shape: .none, kinds: textKinds),
        FieldRule("timestamp",
            synonyms: ["occurred_at", "event_time", "event_timestamp", "ts", "created_at", "time", "event_ts",
                       "happened_at", "logged_at", "event_at", "event_date", "occurred_on", "received_at", "sent_at",
                       "event_datetime", "datetime", "recorded_at"],
            phrases: ["event_time", "event_timestamp", "occurred", "timestamp"], shape: .timestamp,
            kinds: timeKinds, valuesAloneBase: 0.6),
        FieldRule("user_id",
            synonyms: ["participant_id", "customer_id", "member_id", "contact_id", "person_id", "respondent_id",
                       "panelist_id", "panellist_id", "user", "userid", "external_id", "subscriber_id", "uid",
                       "user_key", "customer_key", "participant_key", "subject_id", "patient_id", "account_id"],
            phrases: ["user_id", "participant_id", "customer_id", "member_id"], shape: .none, kinds: keyKinds),
    ]
}

// MARK: - Consent words

/// Words consent columns are written with, and what they mean.
enum ConsentVocabulary {
    static let optIn: Set<String> = [
        "opted_in", "optedin", "opt_in", "optin", "in", "subscribed", "granted", "given", "accepted", "consented",
        "consent_given", "consent_granted", "agreed", "allow", "allowed", "permitted", "confirmed", "double_opt_in",
        "double_opted_in", "single_opt_in", "confirmed_opt_in", "active", "opted_in_double", "express", "explicit",
        "implied", "implicit", "consent",
    ]
    static let optOut: Set<String> = [
        "opted_out", "optedout", "opt_out", "optout", "out", "unsubscribed", "withdrawn", "revoked", "denied",
        "declined", "refused", "rejected", "not_given", "no_consent", "consent_withdrawn", "consent_revoked",
        "blocked", "suppressed", "bounced", "do_not_contact", "dnc", "inactive", "expired", "pending",
        "unconfirmed", "unknown", "not_asked", "none", "n_a", "na", "null", "undefined", "not_subscribed",
        "cleaned", "erased", "deleted", "forgotten", "objected", "not_opted_in", "never_subscribed", "no_answer",
        "not_set",
    ]
    static let yes: Set<String> = ["yes", "y", "true", "t", "1", "on", "ja", "oui", "si"]
    static let no: Set<String> = ["no", "n", "false", "f", "0", "off", "nein", "non"]
    /// Words that only consent columns use (not `yes`, `active` or `pending`): a column of these is consent even
    /// without a name pointing at it.
    static let specific: Set<String> = [
        "opted_in", "optedin", "opt_in", "optin", "subscribed", "granted", "consented", "consent_given",
        "double_opt_in", "opted_out", "optedout", "opt_out", "optout", "unsubscribed", "withdrawn", "revoked",
        "consent_withdrawn", "consent_revoked", "do_not_contact", "not_opted_in", "confirmed_opt_in",
    ]
    /// Column name words that say opted *out*: their "yes" means no.
    static let invertedNames: [[String]] = [
        ["opted", "out"], ["opt", "out"], ["optout"], ["optedout"], ["unsubscribed"], ["do", "not", "contact"],
        ["dnc"], ["do", "not", "email"], ["no", "contact"], ["withdrawn"], ["suppressed"],
    ]

    /// A value as a word: lower-cased, trimmed, spaces, dashes and slashes as `_`.
    static func normalised(_ value: String) -> String {
        var out = ""
        for c in value.trimmingWhitespace().lowercased() {
            if c == " " || c == "-" || c == "/" || c == "_" {
                if !out.isEmpty && out.last != "_" { out.append("_") }
            } else {
                out.append(c)
            }
        }
        while out.last == "_" { out.removeLast() }
        return out
    }

    /// true: opted in; false: not; nil: not a consent word.
    static func meaning(_ value: String, inverted: Bool) -> Bool? {
        let w = normalised(value)
        if optIn.contains(w) { return true }
        if optOut.contains(w) { return false }
        if yes.contains(w) { return !inverted }
        if no.contains(w) { return inverted }
        return nil
    }

    static func isSpecific(_ value: String) -> Bool { specific.contains(normalised(value)) }

    static func isInvertedName(_ tokens: [String]) -> Bool {
        invertedNames.contains { FieldRule.find($0, in: tokens) != nil }
    }
}
