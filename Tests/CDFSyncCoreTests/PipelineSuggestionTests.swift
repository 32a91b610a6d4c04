@testable import CDFSyncCore
import Foundation
import Testing

/// The matcher behind `cdfsync pipeline init`, on column lists and value samples (no warehouse).
@Suite("Pipeline suggestion: matching columns to fields")
struct PipelineSuggestionTests {
    static let source = QualifiedName(catalog: "main", schema: "research", table: "participants")

    /// `n` values made by `make(i)`.
    static func values(_ n: Int, _ make: (Int) -> String?) -> [String?] { (0..<n).map(make) }

    static func profile(_ columns: [SourceProfile.Column], type: String? = "MANAGED", cdf: Bool? = true,
                        format: String? = "DELTA", rows: Int? = nil) -> SourceProfile {
        SourceProfile(source: source, tableType: type, format: format, changeDataFeed: cdf, columns: columns,
            sampledRows: rows ?? columns.map(\.values.count).max() ?? 0)
    }

    static func column(_ name: String, _ type: String = "string", _ values: [String?] = []) -> SourceProfile.Column {
        SourceProfile.Column(name: name, type: type, values: values)
    }

    static let ids = values(1000) { "P-\($0)" }
    static let emails = values(1000) { "person\($0)@example.org" }
    static let phones = values(1000) { "+44 7700 9\(String(format: "%05d", $0))" }
    /// 96 % phone numbers, the rest not.
    static let mostlyPhones = values(1000) { $0 % 25 == 0 ? "ask reception" : "+49 30 1234\(String(format: "%04d", $0))" }
    /// 91 % phone numbers.
    static let someWorkPhones = values(1000) { $0 % 11 == 0 ? "n/a" : "+33 1 44 55 \(String(format: "%04d", $0))" }

    @Test func eachFieldIsMatchedByNameSynonymAndValuesWithItsReason() {
        let consent = Self.values(1000) { ["Opted In", "opted_in", "OPTED-OUT", "Withdrawn", "yes", "maybe"][$0 % 6] }
        let s = PipelineSuggester.suggest(Self.profile([
            Self.column("Participant ID", "string", Self.ids),
            Self.column("firstName", "string", Self.values(1000) { "Ana\($0)" }),
            Self.column("Surname", "string", Self.values(1000) { "Lima\($0)" }),
            Self.column("E-Mail Address", "string", Self.emails),
            Self.column("mobile", "string", Self.phones),
            Self.column("Organisation", "string", Self.values(1000) { "Org \($0 % 7)" }),
            Self.column("country_code", "string", Self.values(1000) { ["DE", "gb", "France", "USA"][$0 % 4] }),
            Self.column("Town", "string", Self.values(1000) { _ in "Lyon" }),
            Self.column("title", "string", Self.values(1000) { _ in "Nurse" }),
            Self.column("tier", "string", Self.values(1000) { _ in "gold" }),
            Self.column("Opt-In Status", "string", consent),
            Self.column("updated_at", "timestamp", Self.values(1000) { _ in "2026-03-01T09:00:00.000Z" }),
            Self.column("shoe size", "int", Self.values(1000) { "\($0 % 12 + 36)" }),
            Self.column("prefs", "struct<a:int>"),
        ]))
        let mapping = s.mapping
        #expect(mapping == [
            "external_id": "Participant ID", "first_name": "firstName", "last_name": "Surname",
            "email": "E-Mail Address", "phone": "mobile", "company": "Organisation", "country": "country_code",
            "city": "Town", "job_title": "title", "segment": "tier", "consent_status": "Opt-In Status",
            "last_updated": "updated_at",
        ])
        #expect(s.field("email")?.reason == "synonym of email, 100 % of 1,000 sampled values look like emails")
        #expect(s.field("external_id")?.reason
            == "synonym of external_id, all 1,000 sampled values distinct and non-empty")
        #expect(s.field("last_updated")?.reason == "synonym of last_updated, TIMESTAMP column")
        #expect(s.isComplete)
        // Consent: the opted-in spellings seen (compared case-insensitively, so each once), the rest listed.
        let c = try! #require(s.consent)
        #expect(c.column == "Opt-In Status" && c.status == .suggested)
        #expect(Set(c.optedIn) == ["Opted In", "opted_in", "yes"])
        #expect(Set(c.notOptedIn.map(\.value)) == ["OPTED-OUT", "Withdrawn"])
        #expect(c.unrecognised == [.init(value: "maybe", count: 166)])
        #expect(c.reason == "50 % of 1,000 sampled values read as opted in")
        // The rest: typed attributes, an awkward name given a JSON-friendly one.
        #expect(s.attributes == [
            .init(column: "shoe size", name: "shoe_size", type: .integer, sourceType: "int"),
            .init(column: "prefs", name: nil, type: .json, sourceType: "struct<a:int>"),
        ])
        #expect(s.mode.mode == .cdf && s.mode.reason == "delta.enableChangeDataFeed is true")
        #expect(s.name == "participants")
    }

    @Test func twoColumnsThatFitEquallyLeaveTheFieldAmbiguousWithBoth() {
        let s = PipelineSuggester.suggest(Self.profile([
            Self.column("participant_id", "string", Self.ids),
            Self.column("mobile", "string", Self.mostlyPhones),
            Self.column("work_phone", "string", Self.someWorkPhones),
        ]))
        let phone = try! #require(s.field("phone"))
        #expect(phone.status == .ambiguous && phone.column == nil)
        #expect(phone.reason == "ambiguous — mobile (96 % phone-shaped), work_phone (90 % phone-shaped)",
            "\(phone.reason)")
        #expect(s.mapping["phone"] == nil)
        let yaml = s.yaml(connection: .init(name: "prod"))
        #expect(yaml.contains("  # phone: ambiguous — mobile (96 % phone-shaped), work_phone (90 % phone-shaped); uncomment one\n"
            + "  # phone: mobile\n  # phone: work_phone\n"), "\(yaml)")
        // Neither is taken: both are offered as attributes too.
        #expect(s.attributes.map(\.column) == ["mobile", "work_phone"])
    }

    @Test func theFieldsOwnNameWinsAndTheOthersAreMentioned() {
        let s = PipelineSuggester.suggest(Self.profile([
            Self.column("participant_id", "string", Self.ids),
            Self.column("phone", "string", Self.phones),
            Self.column("work_phone", "string", Self.someWorkPhones),
        ]))
        #expect(s.field("phone")?.column == "phone" && s.field("phone")?.status == .suggested)
        #expect(s.field("phone")?.reason.hasSuffix("; also fits: work_phone (90 % phone-shaped)") == true)
    }

    @Test func aNameMatchWhoseValuesDoNotFitIsNotMappedAndValuesAloneFindTheRightColumn() {
        let s = PipelineSuggester.suggest(Self.profile([
            Self.column("participant_id", "string", Self.ids),
            Self.column("email", "string", Self.values(1000) { $0 % 10 < 4 ? "a\($0)@example.org" : "unknown" }),
            Self.column("contact", "string", Self.emails),
        ]))
        let email = try! #require(s.field("email"))
        #expect(email.column == "contact" && email.status == .suggested)
        #expect(email.reason == "no name match, 100 % of 1,000 sampled values look like emails")
        #expect(email.candidates.first { $0.column == "email" }?.fits == false)

        let none = PipelineSuggester.suggest(Self.profile([
            Self.column("participant_id", "string", Self.ids),
            Self.column("email", "string", Self.values(1000) { $0 % 10 < 4 ? "a\($0)@example.org" : "unknown" }),
            Self.column("email_verified", "boolean", Self.values(1000) { _ in "true" }),
        ]))
        #expect(none.field("email")?.status == .notFound)
        #expect(none.field("email")?.reason
            == "no column fits — email (40 % email-shaped), email_verified (BOOLEAN)", "\(none.field("email")!.reason)")
    }

    @Test func aLowShareOfValidValuesIsSaidToBreakTheInvalidRatio() {
        let s = PipelineSuggester.suggest(Self.profile([
            Self.column("participant_id", "string", Self.ids),
            Self.column("phone", "string", Self.someWorkPhones),
        ]))
        #expect(s.field("phone")?.status == .suggested)
        #expect(s.field("phone")?.reason.contains("the other 10 % would be invalid rows") == true)
    }

    @Test func nationalNumbersAskForARegionAndFitWithOne() {
        let national = Self.values(500) { "020 7946 \(String(format: "%04d", $0))" }
        let profile = Self.profile([Self.column("participant_id", "string", Array(Self.ids.prefix(500))),
                                    Self.column("phone", "string", national)])
        let without = PipelineSuggester.suggest(profile)
        #expect(without.field("phone")?.status == .notFound)
        #expect(without.field("phone")?.reason.contains("100 % national numbers") == true)
        #expect(without.field("phone")?.candidates.first?.reason.contains("--phone-region") == true)
        let with = PipelineSuggester.suggest(profile, options: .init(defaultPhoneRegion: "gb"))
        #expect(with.field("phone")?.column == "phone" && with.field("phone")?.status == .suggested)
        #expect(with.defaultPhoneRegion == "GB")
        #expect(with.pipeline(connection: .init(name: "x")).validation.defaultPhoneRegion == "GB")
    }

    @Test func aKeyWhoseValuesRepeatIsNotAKey() {
        let s = PipelineSuggester.suggest(Self.profile([
            Self.column("customer_id", "string", Self.values(100) { "C\($0 % 10)" }),
            Self.column("email", "string", Array(Self.emails.prefix(100))),
        ]))
        #expect(s.field("external_id")?.status == .notFound)
        #expect(!s.isComplete)
        #expect(s.field("external_id")?.reason == "no column fits — customer_id (values repeat)")
        let yaml = s.yaml(connection: .init(name: "prod"))
        #expect(yaml.contains("# NOT READY: external_id has no column yet"), "\(yaml)")
    }

    @Test func someoneElsesEmailIsOfferedNotChosen() {
        let s = PipelineSuggester.suggest(Self.profile([
            Self.column("participant_id", "string", Self.ids),
            Self.column("manager_email", "string", Self.emails),
        ]))
        #expect(s.field("email")?.status == .uncertain && s.field("email")?.column == "manager_email")
        #expect(s.mapping["email"] == nil)
        #expect(s.yaml(connection: .init(name: "p")).contains("  # email: manager_email"))
    }

    @Test func aColumnServesOneField() {
        // `user_id` is a synonym of external_id; `id` only a weak one: the surer pairing takes user_id first.
        let s = PipelineSuggester.suggest(Self.profile([
            Self.column("user_id", "string", Self.ids),
            Self.column("email", "string", Self.emails),
        ]))
        #expect(s.mapping == ["external_id": "user_id", "email": "email"])
        #expect(s.attributes.isEmpty)
    }

    @Test func consentAsAnInvertedBooleanMeansFalseIsOptedIn() {
        let s = PipelineSuggester.suggest(Self.profile([
            Self.column("participant_id", "string", Array(Self.ids.prefix(10))),
            Self.column("do_not_contact", "boolean", Self.values(10) { $0 < 3 ? "true" : "false" }),
        ]))
        let c = try! #require(s.consent)
        #expect(c.inverted && c.optedIn == ["false"] && c.notOptedIn == [.init(value: "true", count: 3)])
        #expect(c.status == .suggested)
    }

    @Test func aConsentColumnWithoutAnOptedInValueIsLeftForTheReader() {
        let s = PipelineSuggester.suggest(Self.profile([
            Self.column("participant_id", "string", Array(Self.ids.prefix(10))),
            Self.column("consent", "string", Self.values(10) { $0 < 3 ? "withdrawn" : "pending" }),
        ]))
        #expect(s.consent?.status == .uncertain)
        #expect(s.field("consent_status")?.status == .uncertain)
        #expect(s.mapping["consent_status"] == nil)
        #expect(s.pipeline(connection: .init(name: "p")).consent == nil)
        let yaml = s.yaml(connection: .init(name: "p"))
        #expect(yaml.contains("# consent:") && yaml.contains("#   opted_in: [VALUE]"), "\(yaml)")
    }

    @Test func aStatusColumnOfConsentWordsIsFoundByItsValues() {
        let s = PipelineSuggester.suggest(Self.profile([
            Self.column("participant_id", "string", Array(Self.ids.prefix(20))),
            Self.column("status", "string", Self.values(20) { $0 % 2 == 0 ? "Subscribed" : "Unsubscribed" }),
            Self.column("is_active", "boolean", Self.values(20) { _ in "true" }),
        ]))
        #expect(s.consent?.column == "status" && s.consent?.optedIn == ["Subscribed"])
        #expect(s.attributes.map(\.column) == ["is_active"], "a plain boolean is not taken for consent")
    }

    @Test func theModeFollowsTheSourceKindChangeDataFeedAndCursor() {
        let cols = [Self.column("participant_id", "string", Array(Self.ids.prefix(5))),
                    Self.column("modified", "timestamp_ntz", Self.values(5) { _ in "2026-03-01T09:00:00" })]
        let view = PipelineSuggester.suggest(Self.profile(cols, type: "VIEW", cdf: nil, format: nil))
        #expect(view.mode == .init(mode: .watermark, cursor: "modified",
            reason: "a view has no change data feed; modified is a last-modified time", cursorCandidates: []))
        #expect(view.pipeline(connection: .init(name: "p")).watermark?.column == "modified")
        let off = PipelineSuggester.suggest(Self.profile(cols, cdf: false))
        #expect(off.mode.mode == .watermark && off.mode.reason.hasPrefix("delta.enableChangeDataFeed is not true"))
        #expect(off.yaml(connection: .init(name: "p")).contains("SET TBLPROPERTIES (delta.enableChangeDataFeed = true)"))
        let noCursor = PipelineSuggester.suggest(Self.profile(Array(cols.prefix(1)), type: "VIEW", cdf: nil, format: nil))
        #expect(noCursor.mode.mode == .snapshot)
        let unknown = PipelineSuggester.suggest(Self.profile(cols, cdf: nil))
        #expect(unknown.mode.mode == .auto)
        let parquet = PipelineSuggester.suggest(Self.profile(Array(cols.prefix(1)), cdf: false, format: "PARQUET"))
        #expect(parquet.mode.mode == .snapshot && parquet.mode.reason.hasPrefix("a PARQUET table has no change data feed"))
        let twoCursors = PipelineSuggester.suggest(Self.profile(cols + [
            Self.column("updated_at", "timestamp", Self.values(5) { _ in "2026-03-01T09:00:00Z" })], cdf: false))
        #expect(twoCursors.mode.mode == .snapshot && twoCursors.mode.cursorCandidates == ["modified", "updated_at"])
        #expect(twoCursors.field("last_updated")?.status == .ambiguous)
    }

    @Test func timestampsWrittenAsTextAreNotACursor() {
        let s = PipelineSuggester.suggest(Self.profile([
            Self.column("participant_id", "string", Array(Self.ids.prefix(5))),
            Self.column("updated_at", "string", Self.values(5) { "2026-03-0\($0 + 1)T09:00:00Z" }),
        ], cdf: false))
        #expect(s.field("last_updated")?.status == .notFound)
        #expect(s.field("last_updated")?.reason
            == "no column fits — updated_at (STRING of timestamps as text)", "\(s.field("last_updated")!.reason)")
        #expect(s.field("last_updated")?.candidates.first?.reason.hasSuffix("needs a TIMESTAMP or DATE column (cast it in a view)") == true)
        #expect(s.mode.mode == .snapshot)
    }

    @Test func anEventsTableMapsItsFourFieldsAndNeedsItsIdentityPipelineForUserID() {
        let cols = [
            Self.column("event_id", "string", Array(Self.ids.prefix(50))),
            Self.column("Event Name", "string", Self.values(50) { _ in "login" }),
            Self.column("occurred_at", "timestamp", Self.values(50) { _ in "2026-03-01T09:00:00Z" }),
            Self.column("participant_id", "string", Self.values(50) { "P\($0 % 5)" }),
            Self.column("device", "string", Self.values(50) { _ in "ios" }),
        ]
        let s = PipelineSuggester.suggest(Self.profile(cols, type: "VIEW", cdf: nil, format: nil),
            options: .init(kind: .events))
        #expect(s.fields.map(\.field) == ["event_id", "name", "timestamp", "user_id"])
        #expect(s.mapping == ["event_id": "event_id", "name": "Event Name", "timestamp": "occurred_at"])
        #expect(s.notes.first?.hasPrefix("user_id is left out") == true)
        #expect(s.mode.mode == .watermark && s.mode.cursor == "occurred_at")
        let with = PipelineSuggester.suggest(Self.profile(cols), options: .init(kind: .events, identityPipeline: "panel"))
        #expect(with.mapping["user_id"] == "participant_id")
        #expect(with.pipeline(connection: .init(name: "p")).identityPipeline == "panel")
        #expect(with.pipeline(connection: .init(name: "p")).validation.required == ["event_id"])
        #expect(with.attributes.map(\.column) == ["device"])
    }

    @Test func wordsOfColumnNames() {
        #expect(ColumnName.words("firstName") == ["first", "name"])
        #expect(ColumnName.words("E-Mail Address") == ["e", "mail", "address"])
        #expect(ColumnName.words("HTTPServer_ID") == ["http", "server", "id"])
        #expect(ColumnName.words("Téléphone") == ["telephone"])
        #expect(ColumnName.words("`odd`  name$") == ["odd", "name"])
    }

    @Test func yamlScalarsReadBackAsTheirText() {
        #expect(YAMLText.value("participant_id") == "participant_id")
        #expect(YAMLText.value("yes") == "\"yes\"" && YAMLText.value("Null") == "\"Null\"")
        #expect(YAMLText.value("2024") == "\"2024\"")
        #expect(YAMLText.value("notes $HOME") == "\"notes $$HOME\"")
        #expect(YAMLText.value("a\"b\\c\nd\u{2028}") == "\"a\\\"b\\\\c\\nd\\u2028\"")
        #expect(YAMLText.value("tick`s: #x") == "\"tick`s: #x\"")
        #expect(YAMLText.commentSafe("a\nb") == "a\\u{a}b")
    }

    @Test func pipelineNamesFromTableNames() {
        func name(_ table: String, schema: String = "research") -> String {
            PipelineSuggester.pipelineName(for: QualifiedName(catalog: "main", schema: schema, table: table))
        }
        #expect(name("participants") == "participants")
        #expect(name("Panel Members 2024 (EU)") == "panel-members-2024-eu")
        #expect(name("..hidden") == "hidden")
        #expect(name("Ünïcödé_Tåble") == "unicode_table")
        #expect(name("日本", schema: "日本") == "pipeline")
        #expect(name("日本") == "research")
        #expect(name(String(repeating: "x", count: 300)).utf8.count == 100)
        for n in ["Panel Members 2024 (EU)", "..hidden", "a/b", "x\ny", "`"] {
            #expect(Pipeline.nameProblem(name(n), maxBytes: 255) == nil, "\(name(n))")
        }
    }

    @Test func sourceTextReadsBackAsTheSameThreeNames() throws {
        for table in ["participants", "Panel Members 2024", "a.b", "tick`s", "β", " padded "] {
            let q = QualifiedName(catalog: "main", schema: "my schema", table: table)
            let text = PipelineSuggester.sourceText(q)
            #expect(try QualifiedName(parsing: text) == q, "\(text)")
        }
        #expect(PipelineSuggester.sourceText(Self.source) == "main.research.participants")
    }

    @Test func jsonCarriesEachFieldsStatusColumnConfidenceReasonAndCandidates() throws {
        let s = PipelineSuggester.suggest(Self.profile([
            Self.column("participant_id", "string", Self.ids),
            Self.column("mobile", "string", Self.mostlyPhones),
            Self.column("work_phone", "string", Self.someWorkPhones),
        ]))
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(s.json())) as? [String: Any])
        #expect(obj["format"] as? String == "cdfsync-pipeline-suggestion/1")
        let fields = try #require(obj["fields"] as? [[String: Any]])
        let phone = try #require(fields.first { $0["field"] as? String == "phone" })
        #expect(phone["status"] as? String == "ambiguous" && phone["column"] is NSNull)
        #expect((phone["candidates"] as? [[String: Any]])?.map { $0["column"] as? String } == ["mobile", "work_phone"])
        let key = try #require(fields.first { $0["field"] as? String == "external_id" })
        #expect(key["column"] as? String == "participant_id" && key["confidence"] as? Double == 0.85)
        #expect((obj["mode"] as? [String: Any])?["mode"] as? String == "cdf")
        #expect(obj["consent"] is NSNull)
    }
}

