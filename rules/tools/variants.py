"""Detector cases for text as people actually write it (issue 18): one function per variant
kind, each returning (category, case) pairs with at least 20 positives and 20 hard
negatives. gen_tests.py merges them into the per-category files and counts them per kind.

Kinds: normalised (invisible characters, full-width forms, Unicode spaces and dashes),
numbers (separator runs, NINOs in any case), the dictionary kinds case, separators, tags,
suffixes and confusables, wrapped (base64 blobs) and placeholders (obviously-not-secret
shapes are not reported; placeholder-like real secrets still are)."""
import base64, json
import testvalues as tv
from cases import P, N

CARD, IBAN, SSN, NINO = "pii.credit_card", "pii.iban", "pii.us_ssn", "pii.uk_nino"
CODE, MARK = "corp.codename", "corp.marking"
AWS, GH, SLACK, GOOG, STRIPE, JWT, KEY = ("secret.aws_access_key", "secret.github_token", "secret.slack_token",
                                         "secret.google_api_key", "secret.stripe_key", "secret.jwt", "secret.private_key")
ZWSP, ZWJ, ZWNJ, SHY, WJ, BOM, NBSP, NNBSP, THIN, IDEO, VS16 = (
    "\u200b", "\u200d", "\u200c", "\u00ad", "\u2060", "\ufeff", "\u00a0", "\u202f", "\u2009", "\u3000", "\ufe0f")
FW = {c: chr(ord(c) + 0xFEE0) for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-"}
FW["-"] = "\uff0d"; FW[" "] = IDEO

def fullwidth(s):
    return "".join(FW.get(c, c) for c in s)

def kind(k, items):
    for cat, c in items:
        c["kind"] = k
    return items

def g4(n, s=" "):
    return tv.group(n, [4, 4, 4, 4], s)

def normalised():
    c = [tv.luhn_complete("4", 16) for _ in range(6)] + [tv.luhn_complete("5", 16) for _ in range(4)]
    ssn = [tv.ssn() for _ in range(3)]
    de = tv.iban("DE", "370400440532013000", True); gb = tv.iban("GB", "NWBK60161331926819", True)
    nino = tv.nino(); aws = tv.aws(); gh = tv.github()
    out = [
        (CARD, P(f"card {c[0][:4]}{ZWSP} {c[0][4:8]} {c[0][8:12]} {c[0][12:]}", f"{c[0][:4]}{ZWSP} {c[0][4:8]} {c[0][8:12]} {c[0][12:]}")),
        (CARD, P(f"pasted from Word: {g4(c[1], NBSP)} thanks", g4(c[1], NBSP))),
        (CARD, P(f"カード番号 {fullwidth(c[2])} です", fullwidth(c[2]))),
        (CARD, P(f"card {g4(c[3], NNBSP)}", g4(c[3], NNBSP))),
        (CARD, P(f"card {g4(c[4], chr(0x2013))} (en dashes)", g4(c[4], "\u2013"))),
        (CARD, P(f"numero {c[5][:8]}{SHY}{c[5][8:]}", f"{c[5][:8]}{SHY}{c[5][8:]}")),
        (CARD, P(f"{fullwidth(g4(c[6]))}", fullwidth(g4(c[6])))),
        (CARD, P(f"card{IDEO}{g4(c[7], IDEO)}", g4(c[7], IDEO))),
        (CARD, P(f"{BOM}{c[8][:4]}{WJ}{c[8][4:]} charged", f"{c[8][:4]}{WJ}{c[8][4:]}")),
        (CARD, P(f"mc {g4(c[9], THIN)}", g4(c[9], THIN))),
        (SSN, P(f"SSN {ssn[0].replace('-', chr(0x2011))}", ssn[0].replace("-", "\u2011"))),
        (SSN, P(f"SSN {fullwidth(ssn[1])}", fullwidth(ssn[1]))),
        (SSN, P(f"ssn {ssn[2][:3]}{ZWSP}-{ssn[2][4:]}", f"{ssn[2][:3]}{ZWSP}-{ssn[2][4:]}")),
        (IBAN, P(f"IBAN {de.replace(' ', NBSP)}", de.replace(" ", NBSP))),
        (IBAN, P(f"IBAN {fullwidth(gb.replace(' ', ''))}", fullwidth(gb.replace(" ", "")))),
        (NINO, P(f"NI {fullwidth(nino)}", fullwidth(nino))),
        (CODE, P(f"BLUE{ZWSP}HERON ships soon", f"BLUE{ZWSP}HERON")),
        (CODE, P("ＢＬＵＥＨＥＲＯＮ launch", "ＢＬＵＥＨＥＲＯＮ")),
        (CODE, P(f"Project{NBSP}Night{SHY}jar update", f"Project{NBSP}Night{SHY}jar")),
        (CODE, P(f"Operation{ZWJ} Larkspur{VS16}", f"Operation{ZWJ} Larkspur")),
        (CODE, P("KESTREL\u20117 specs", "KESTREL\u20117")),
        (AWS, P(f"key {aws[:10]}{ZWSP}{aws[10:]}", f"{aws[:10]}{ZWSP}{aws[10:]}")),
        (AWS, P(f"key {fullwidth(aws)}", fullwidth(aws))),
        (GH, P(f"token {gh[:20]}{ZWNJ}{gh[20:]}", f"{gh[:20]}{ZWNJ}{gh[20:]}")),
        (MARK, P(f"CONFI{SHY}DENTIAL{NBSP}— draft", f"CONFI{SHY}DENTIAL")),
    ]
    neg = [
        (CARD, N(f"card {g4(tv.luhn_broken('4', 16), NBSP)} (typo)")),
        (CARD, N(f"{fullwidth(tv.luhn_broken('5', 16))} は無効")),
        (CARD, N(f"call +1{NBSP}415{NBSP}555{NBSP}0132")),
        (CARD, N(f"order {ZWSP}#{tv.luhn_broken('4', 16)}")),
        (CARD, N(f"👨{ZWJ}👩{ZWJ}👧 family of 4 at 11:11{VS16}")),
        (CARD, N(f"tracking{NBSP}1Z999AA10123456784")),
        (SSN, N(f"{fullwidth('666-12-3456')} is not valid")),
        (SSN, N(f"000\u201112\u20113456 is not valid")),
        (SSN, N(f"call 555\u2013123\u20134567")),
        (IBAN, N(f"IBAN {tv.bad_iban('DE', '370400440532013000', True).replace(' ', NBSP)}")),
        (IBAN, N(f"{fullwidth('XX82WEST12345698765432')}")),
        (NINO, N(f"{fullwidth('QQ123456C')} is the specimen")),
        (NINO, N(f"{fullwidth('AB123456E')} bad suffix")),
        (CODE, N(f"a blue{NBSP}heron at the lake")),
        (CODE, N(f"a blue{ZWSP} heron, seen at dawn")),
        (CODE, N("ｌａｒｋｓｐｕｒ flowers")),
        (CODE, N(f"the nightjar{SHY}s of the heath")),
        (CODE, N(f"kestrel{NBSP}7 times a day")),
        (MARK, N(f"keep it con{SHY}fidential please")),
        (MARK, N(f"an internal{NBSP}review")),
        (AWS, N(f"{fullwidth('AKIA')}XXXXXXXXXXXXXXXX placeholder")),
        (GH, N(f"ghp_{ZWSP}abc123 is too short")),
    ]
    return kind("normalised", out + neg)

def numbers():
    c = [tv.luhn_complete("4", 16) for _ in range(5)] + [tv.luhn_complete("5", 16) for _ in range(3)]
    amex = tv.luhn_complete("34", 15)
    ssn = [tv.ssn() for _ in range(6)]
    n = [tv.nino() for _ in range(6)]
    de = tv.iban("DE", "370400440532013000"); nl = tv.iban("NL", "ABNA0417164300"); fr = tv.iban("FR", "20041010050500013M02606")
    dots = lambda s: " ".join(s[i:i + 4] for i in range(0, len(s), 4)).replace(" ", ".")
    out = [
        (CARD, P(f"card {g4(c[0], '.')}", g4(c[0], "."))),
        (CARD, P(f"card {g4(c[1], '/')}", g4(c[1], "/"))),
        (CARD, P(f"card {g4(c[2], '  ')} thanks", g4(c[2], "  "))),
        (CARD, P(f"card {g4(c[3], ' - ')}", g4(c[3], " - "))),
        (CARD, P(f"card {g4(c[4], '--')}", g4(c[4], "--"))),
        (CARD, P(f"mc {g4(c[5], '. ')}", g4(c[5], ". "))),
        (CARD, P(f"mc {tv.group(c[6], [4, 4, 4, 4], '.')}, exp soon", tv.group(c[6], [4, 4, 4, 4], "."))),
        (CARD, P(f"amex {tv.group(amex, [4, 6, 5], '.')}", tv.group(amex, [4, 6, 5], "."))),
        (IBAN, P(f"IBAN {dots(de)}", dots(de))),
        (IBAN, P(f"IBAN {tv.group(nl, [4, 4, 4, 4, 2], '  ')}", tv.group(nl, [4, 4, 4, 4, 2], "  "))),
        (IBAN, P(f"RIB {tv.group(fr, [4, 4, 4, 4, 4, 4, 3], '-')}", tv.group(fr, [4, 4, 4, 4, 4, 4, 3], "-"))),
        (SSN, P(f"SSN {ssn[0].replace('-', '.')}", ssn[0].replace("-", "."))),
        (SSN, P("my ssn is 078.05.1123", "078.05.1123")),
        (SSN, P(f"SSN {ssn[1].replace('-', '/')}", ssn[1].replace("-", "/"))),
        (SSN, P(f"SSN {ssn[2].replace('-', ' - ')}", ssn[2].replace("-", " - "))),
        (SSN, P(f"SSN {ssn[3].replace('-', '--')}", ssn[3].replace("-", "--"))),
        (SSN, P(f"social security number {ssn[4].replace('-', '  ')}", ssn[4].replace("-", "  "))),
        (NINO, P(f"ni number {n[0].lower()}", n[0].lower())),
        (NINO, P(f"NI {n[1][:2].lower()} {n[1][2:4]} {n[1][4:6]} {n[1][6:8]} {n[1][8].lower()}", f"{n[1][:2].lower()} {n[1][2:4]} {n[1][4:6]} {n[1][6:8]} {n[1][8].lower()}")),
        (NINO, P(f"NINO {n[2][:2]}-{n[2][2:4]}-{n[2][4:6]}-{n[2][6:8]}-{n[2][8]}", f"{n[2][:2]}-{n[2][2:4]}-{n[2][4:6]}-{n[2][6:8]}-{n[2][8]}")),
        (NINO, P(f"NINO {n[3][:2]}.{n[3][2:4]}.{n[3][4:6]}.{n[3][6:8]}.{n[3][8]}", f"{n[3][:2]}.{n[3][2:4]}.{n[3][4:6]}.{n[3][6:8]}.{n[3][8]}")),
        (NINO, P(f"NI {n[4][0]}{n[4][1].lower()}{n[4][2:]}", f"{n[4][0]}{n[4][1].lower()}{n[4][2:]}")),
        (NINO, P(f"ni {n[5][:2]}  {n[5][2:8]}  {n[5][8]}", f"{n[5][:2]}  {n[5][2:8]}  {n[5][8]}")),
    ]
    neg = [
        (CARD, N(f"card {g4(tv.luhn_broken('4', 16), '.')}")),
        (CARD, N(f"card {g4(tv.luhn_broken('5', 16), '/')}")),
        (CARD, N(f"card {g4(tv.luhn_broken('4', 16), '  ')}")),
        (CARD, N(f"card {g4(tv.luhn_broken('4', 16), ' - ')}")),
        (CARD, N("version 4.1.1111.1111 released")),
        (CARD, N("dates 2024/06/01 and 2025/01/31")),
        (CARD, N("public resolvers 8.8.4.4 and 1.1.1.1")),
        (CARD, N(f"1.{g4(tv.luhn_complete('4', 16), '.')} is a longer dotted number")),
        (SSN, N("666.12.3456 is not valid")),
        (SSN, N("900.12.3456 is an ITIN range")),
        (SSN, N("123.00.4567 has group zero")),
        (SSN, N("call 555.123.4567 tomorrow")),
        (SSN, N("version 1.123.45.6789 of the firmware")),
        (SSN, N("the code 123  45  6789 was on the parcel")),
        (SSN, N("078.05.1120 is the Woolworth wallet card")),
        (NINO, N("qq123456c is the specimen number")),
        (NINO, N("bg 12 34 56 a is unallocated")),
        (NINO, N("ab1234567c is too long")),
        (NINO, N("ab.12.34.56.e has a bad suffix")),
        (NINO, N("da-12-34-56-a has a forbidden first letter")),
        (IBAN, N("DE88.3704.0044.0532.0130.00 typo in the check digits")),
        (IBAN, N("de89.3704.0044.0532.0130.00 lower case")),
    ]
    return kind("numbers", out + neg)

def case():
    out = [
        (CODE, P("blueheron invites are out", "blueheron")),
        (CODE, P("Blueheron invites are out", "Blueheron")),
        (CODE, P("BLUEheron beta", "BLUEheron")),
        (CODE, P("project nightjar", "project nightjar")),
        (CODE, P("PROJECT NIGHTJAR", "PROJECT NIGHTJAR")),
        (CODE, P("Project NIGHTJAR status", "Project NIGHTJAR")),
        (CODE, P("projectNightjar module", "projectNightjar")),
        (CODE, P("PROJECT nightjar", "PROJECT nightjar")),
        (CODE, P("kestrel-7", "kestrel-7")),
        (CODE, P("Kestrel-7 board", "Kestrel-7")),
        (CODE, P("operation larkspur", "operation larkspur")),
        (CODE, P("OPERATION larkspur", "OPERATION larkspur")),
        (CODE, P("Operation LARKSPUR", "Operation LARKSPUR")),
        (CODE, P("operationLarkspur", "operationLarkspur")),
        (CODE, P("Operation larkspur", "Operation larkspur")),
        (CODE, P("PROJECTNIGHTJAR", "PROJECTNIGHTJAR")),
        (CODE, P("the blueheron team", "blueheron")),
        (CODE, P("Project nightjar", "Project nightjar")),
        (CODE, P("PROJECT Nightjar", "PROJECT Nightjar")),
        (CODE, P("OPERATION Larkspur", "OPERATION Larkspur")),
        (CODE, P("operation LARKSPUR", "operation LARKSPUR")),
        (MARK, P("deck is INTERNAL ONLY", "INTERNAL ONLY")),
        (MARK, P("Internal Only - roadmap", "Internal Only")),
        (MARK, P("Strictly Confidential minutes", "Strictly Confidential")),
        (MARK, P("Not For Distribution", "Not For Distribution")),
    ]
    neg = [
        (CODE, N("a BlueHeron flew past")),
        (CODE, N("blueHeron migration")),
        (CODE, N("#GreatBlueHeron at dawn")),
        (CODE, N("GreatBlueHeron photos")),
        (CODE, N("BlueHerons nest here")),
        (CODE, N("the Blue Heron pub")),
        (CODE, N("LarkSpur farm")),
        (CODE, N("larkSpur seeds")),
        (CODE, N("nightJar sounds at dusk")),
        (CODE, N("KesTrel 7 sightings")),
        (MARK, N("please keep this confidential")),
        (MARK, N("#confidential sources")),
        (MARK, N("internal only in the sense that it runs in-process")),
        (MARK, N("strictly private between us")),
        (MARK, N("not for distribution outside the lab")),
        (MARK, N("Strictly confidential, he whispered")),
        (MARK, N("company confidential matters were discussed")),
        (MARK, N("Internal use only applies to the cafeteria")),
        (MARK, N("the word confidential has three syllables")),
        (MARK, N("ConFidential is a band")),
        (MARK, N("it is internalonly, or internal only")),
    ]
    return kind("case", out + neg)

def separators():
    out = [
        (CODE, P("operation-larkspur kicks off", "operation-larkspur")),
        (CODE, P("Operation_Larkspur", "Operation_Larkspur")),
        (CODE, P("operation.larkspur channel", "operation.larkspur")),
        (CODE, P("OperationLarkspur", "OperationLarkspur")),
        (CODE, P("Operation - Larkspur", "Operation - Larkspur")),
        (CODE, P("Operation   Larkspur", "Operation   Larkspur")),
        (CODE, P("Operation\nLarkspur", "Operation\nLarkspur")),
        (CODE, P("project-nightjar repo", "project-nightjar")),
        (CODE, P("PROJECT_NIGHTJAR=1", "PROJECT_NIGHTJAR")),
        (CODE, P("ProjectNightjar", "ProjectNightjar")),
        (CODE, P("project.nightjar.example", "project.nightjar")),
        (CODE, P("KESTREL_7 results", "KESTREL_7")),
        (CODE, P("KESTREL7 results", "KESTREL7")),
        (CODE, P("kestrel.7", "kestrel.7")),
        (CODE, P("Kestrel\u20137 launch", "Kestrel\u20137")),
        (CODE, P("KESTREL--7", "KESTREL--7")),
        (MARK, P("COMPANY_CONFIDENTIAL header", "COMPANY_CONFIDENTIAL")),
        (MARK, P("INTERNAL-ONLY deck", "INTERNAL-ONLY")),
        (MARK, P("file: NOT_FOR_DISTRIBUTION.pdf", "NOT_FOR_DISTRIBUTION")),
        (MARK, P("STRICTLY-CONFIDENTIAL", "STRICTLY-CONFIDENTIAL")),
        (MARK, P("Company-Confidential slides", "Company-Confidential")),
        (MARK, P("INTERNAL_USE_ONLY", "INTERNAL_USE_ONLY")),
    ]
    neg = [
        (CODE, N("a blue heron at the lake")),
        (CODE, N("blue-heron feathers")),
        (CODE, N("Blue_Heron.jpg")),
        (CODE, N("blue.heron photos")),
        (CODE, N("Project Night jar")),
        (CODE, N("the operation. Larkspur grows wild")),
        (CODE, N("operation, larkspur and roses")),
        (CODE, N("operation of larkspur farms")),
        (CODE, N("kestrel 7 times a day")),
        (CODE, N("KESTREL 7 hovered")),
        (CODE, N("larkspur operation")),
        (CODE, N("nightjar project")),
        (CODE, N("project: nightjar")),
        (CODE, N("Operation\n\nLarkspur")),
        (CODE, N("Operation - - - Larkspur")),
        (CODE, N("Night-jar project")),
        (MARK, N("INTERNAL. ONLY the brave")),
        (MARK, N("in-ternal only")),
        (MARK, N("COMPANY: CONFIDENTIALITY policy")),
        (MARK, N("only internal")),
        (MARK, N("NOT FOR. DISTRIBUTION")),
    ]
    return kind("separators", out + neg)

def tags():
    out = [
        (CODE, P("#TeamBlueheron rocks", "Blueheron")),
        (CODE, P("#BLUEHERONLaunch today", "BLUEHERON")),
        (CODE, P("#OperationLarkspurDay", "OperationLarkspur")),
        (CODE, P("#ProjectNightjarUpdate", "ProjectNightjar")),
        (CODE, P("#GoBLUEHERON", "BLUEHERON")),
        (CODE, P("#2024BLUEHERON", "BLUEHERON")),
        (CODE, P("#launchBlueheron", "Blueheron")),
        (CODE, P("@ProjectNightjarHQ", "ProjectNightjar")),
        (CODE, P("#BlueheronDay", "Blueheron")),
        (CODE, P("#Kestrel7Rocks", "Kestrel7")),
        (CODE, P("#WeLoveOperationLarkspur", "OperationLarkspur")),
        (CODE, P("#blueheron", "blueheron")),
        (CODE, P("@blueheron2024", "blueheron")),
        (CODE, P("#Team_Blueheron", "Blueheron")),
        (CODE, P("#KESTREL7Launch", "KESTREL7")),
        (CODE, P("#ThanksProjectNightjar", "ProjectNightjar")),
        (CODE, P("#HappyBlueheronDay", "Blueheron")),
        (MARK, P("#InternalOnlyDeck", "InternalOnly")),
        (MARK, P("#CONFIDENTIALMemo", "CONFIDENTIAL")),
        (MARK, P("#NotForDistribution", "NotForDistribution")),
        (MARK, P("#CompanyConfidentialStuff", "CompanyConfidential")),
    ]
    neg = [
        (CODE, N("#blueheronsighting")),
        (CODE, N("#greatblueheron")),
        (CODE, N("#GreatBlueHeron")),
        (CODE, N("#bluebirdsandherons")),
        (CODE, N("#larkspurgarden")),
        (CODE, N("#LarkspurGarden")),
        (CODE, N("#nightjarsofinstagram")),
        (CODE, N("#operationlarkspurs")),
        (CODE, N("#myblueheron")),
        (CODE, N("@blueheronsighting")),
        (CODE, N("#HeronWatch")),
        (CODE, N("#BlueHeronRookery")),
        (CODE, N("#kestrelwatch")),
        (CODE, N("#KestrelSeven")),
        (CODE, N("#ProjectNightjars")),
        (CODE, N("#KESTREL7B")),
        (MARK, N("#ConfidentialityMatters")),
        (MARK, N("#confidential")),
        (MARK, N("#internalonly")),
        (MARK, N("#CONFIDENTIALITY")),
        (MARK, N("#NONCONFIDENTIAL")),
    ]
    return kind("tags", out + neg)

def suffixes():
    out = [
        (CODE, P("BLUEHERON_v2 ships", "BLUEHERON")),
        (CODE, P("BLUEHERONv2 ships", "BLUEHERON")),
        (CODE, P("blueheron2 is next", "blueheron")),
        (CODE, P("BLUEHERON_beta build", "BLUEHERON")),
        (CODE, P("import blueheron_api", "blueheron")),
        (CODE, P("deploy_blueheron.sh", "blueheron")),
        (CODE, P("KESTREL-7v3 benchmarks", "KESTREL-7")),
        (CODE, P("KESTREL-7_rc1", "KESTREL-7")),
        (CODE, P("OperationLarkspur_v2", "OperationLarkspur")),
        (CODE, P("Operation-Larkspur_final.pptx", "Operation-Larkspur")),
        (CODE, P("ProjectNightjar2 kickoff", "ProjectNightjar")),
        (CODE, P("project_nightjar_v1", "project_nightjar")),
        (CODE, P("the Project Nightjar\u2019s budget", "Project Nightjar")),
        (CODE, P("BLUEHERONv2.1 release", "BLUEHERON")),
        (CODE, P("BLUEHERON2025 roadmap", "BLUEHERON")),
        (CODE, P("old_KESTREL-7 rig", "KESTREL-7")),
        (CODE, P("blueheron_team@ channel", "blueheron")),
        (CODE, P("Operation Larkspur's goals", "Operation Larkspur")),
        (MARK, P("CONFIDENTIAL_v2.docx", "CONFIDENTIAL")),
        (MARK, P("INTERNAL_ONLY_draft", "INTERNAL_ONLY")),
        (MARK, P("COMPANY CONFIDENTIAL_final", "COMPANY CONFIDENTIAL")),
    ]
    neg = [
        (CODE, N("BLUEHERONS nest in colonies")),
        (CODE, N("Blueherons everywhere")),
        (CODE, N("Project Nightjars is not ours")),
        (CODE, N("Operation Larkspurs typo")),
        (CODE, N("KESTREL-70 is a different model")),
        (CODE, N("KESTREL-7B part")),
        (CODE, N("KESTREL-7a revision")),
        (CODE, N("BLUEHERONx")),
        (CODE, N("BLUEHERONING is not a word")),
        (CODE, N("blueheronish colours")),
        (CODE, N("MYBLUEHERON account")),
        (CODE, N("xblueheron")),
        (CODE, N("nightjarring")),
        (CODE, N("KESTREL-77 is newer")),
        (CODE, N("larkspurs bloom")),
        (CODE, N("blueheronlike")),
        (MARK, N("CONFIDENTIALITY clause")),
        (MARK, N("NONCONFIDENTIAL")),
        (MARK, N("He said it was INTERNALLY consistent")),
        (MARK, N("CONFIDENTIALS")),
        (MARK, N("INTERNALONLYFANS")),
    ]
    return kind("suffixes", out + neg)

def confusables():
    out = [
        (CODE, P("ВLUЕНЕRОN ships", "ВLUЕНЕRОN")),
        (CODE, P("BLUEHERОN ships", "BLUEHERОN")),
        (CODE, P("Рroject Nightjar", "Рroject Nightjar")),
        (CODE, P("Project Nіghtjar", "Project Nіghtjar")),
        (CODE, P("KЕSTREL-7 board", "KЕSTREL-7")),
        (CODE, P("ΚESTREL-7 board", "ΚESTREL-7")),
        (CODE, P("Operation Lаrkspur", "Operation Lаrkspur")),
        (CODE, P("Οperation Larkspur", "Οperation Larkspur")),
        (CODE, P("blueherоn beta", "blueherоn")),
        (CODE, P("bluеhеron beta", "bluеhеron")),
        (CODE, P("#ВLUЕHERON", "ВLUЕHERON")),
        (CODE, P("operation-lаrkspur", "operation-lаrkspur")),
        (CODE, P("ProjectΝightjar", "ProjectΝightjar")),
        (CODE, P("OPЕRATION LARKSPUR", "OPЕRATION LARKSPUR")),
        (CODE, P("KESTRЕL_7", "KESTRЕL_7")),
        (CODE, P("BLUEНERON_v2", "BLUEНERON")),
        (MARK, P("CONFIDЕNTIAL: draft", "CONFIDЕNTIAL")),
        (MARK, P("ІNTERNAL ONLY deck", "ІNTERNAL ONLY")),
        (MARK, P("COMPANY CОNFIDENTIAL", "COMPANY CОNFIDENTIAL")),
        (MARK, P("NOT FOR DIЅTRIBUTION", "NOT FOR DIЅTRIBUTION")),
        (MARK, P("STRICTLY PRІVATE", "STRICTLY PRІVATE")),
    ]
    neg = [
        (CODE, N("ВLUЕ НЕRОN at the lake")),
        (CODE, N("ВLUЕНЕRОNS nest")),
        (CODE, N("Lаrkspur flowers")),
        (CODE, N("Nіghtjar calls")),
        (CODE, N("КЕSТRЕL 7 times")),
        (CODE, N("МYВLUЕНЕRОN")),
        (CODE, N("#GrеatВlueНeron")),
        (CODE, N("Ореrаtion оf Lаrkspur")),
        (CODE, N("кестрел-7 по-русски")),
        (CODE, N("ΚΕΣΤΡΕΛ-7 στα ελληνικά")),
        (CODE, N("Проект Найтджар")),
        (CODE, N("синяя цапля у озера")),
        (CODE, N("ВОТ ЕЩЁ ОДНА КОРОВА")),
        (CODE, N("Проект НОРЕ")),
        (MARK, N("cоnfidential between us")),
        (MARK, N("іnternal only lol")),
        (MARK, N("КОНФИДЕНЦИАЛЬНО")),
        (MARK, N("ΕΜΠΙΣΤΕΥΤΙΚΟ")),
        (MARK, N("CОNFIDENTIALITY")),
        (MARK, N("Сompany confidential matters")),
        (MARK, N("ВНУТРЕННЕЕ ONLY? нет")),
    ]
    return kind("confusables", out + neg)

def b64(s, url=False, pad=True):
    raw = s.encode()
    e = base64.urlsafe_b64encode(raw) if url else base64.b64encode(raw)
    e = e.decode()
    return e if pad else e.rstrip("=")

def wrapped():
    aws = [tv.aws() for _ in range(5)]; gh = [tv.github() for _ in range(4)]; sl = [tv.slack_bot() for _ in range(3)]
    goog = [tv.google() for _ in range(2)]; st = [tv.stripe() for _ in range(2)]; j = tv.jwt(); pem = tv.pem("RSA PRIVATE KEY", 4)
    docker = b64(f"deploy:{gh[0]}")
    k8s = b64(aws[0])
    out = [
        (GH, P(f'{{"auths":{{"ghcr.io":{{"auth":"{docker}"}}}}}}', docker)),
        (AWS, P(f"data:\n  AWS_ACCESS_KEY_ID: {k8s}", k8s)),
        (AWS, P(f"Authorization: Basic {b64(aws[1] + ':wJalrXUtnFEMIK7MDENGbPxRfiCY')}", b64(aws[1] + ":wJalrXUtnFEMIK7MDENGbPxRfiCY"))),
        (AWS, P(f"encoded {b64(json.dumps({'key': aws[2]}))} in the config", b64(json.dumps({"key": aws[2]})))),
        (AWS, P(f"url-safe {b64('id=' + aws[3] + '&x=1??>', url=True, pad=False)}", b64("id=" + aws[3] + "&x=1??>", url=True, pad=False))),
        (AWS, P(f'{{"blob":"{b64("k " + aws[4] + " ~~~~~~???").replace("/", chr(92) + "/")}"}}', b64("k " + aws[4] + " ~~~~~~???").replace("/", "\\/"))),
        (GH, P(f"GITHUB_TOKEN_B64={b64(gh[1])}", b64(gh[1]))),
        (GH, P(f"token (base64url): {b64('token ' + gh[2], url=True, pad=False)}", b64("token " + gh[2], url=True, pad=False))),
        (GH, P(f"git credential {b64('https://x:' + gh[3] + '@github.com')}", b64("https://x:" + gh[3] + "@github.com"))),
        (SLACK, P(f"SLACK={b64(sl[0])}", b64(sl[0]))),
        (SLACK, P(f"config {b64(json.dumps({'slack': {'token': sl[1]}}))}", b64(json.dumps({"slack": {"token": sl[1]}})))),
        (SLACK, P(f"{b64(sl[2], url=True)} (url-safe, padded)", b64(sl[2], url=True))),
        (GOOG, P(f"maps {b64(goog[0])}", b64(goog[0]))),
        (GOOG, P(f"firebase {b64(json.dumps({'apiKey': goog[1]}))}", b64(json.dumps({"apiKey": goog[1]})))),
        (STRIPE, P(f"STRIPE_KEY_B64: {b64(st[0])}", b64(st[0]))),
        (STRIPE, P(f"curl -H 'Authorization: Basic {b64(st[1] + ':')}'", b64(st[1] + ":"))),
        (JWT, P(f"session {b64('Bearer ' + j)}", b64("Bearer " + j))),
        (KEY, P(f"tls.key: {b64(pem)}", b64(pem))),
        (AWS, P(f"two layers? one: {b64('aws ' + tv.aws('ASIA'))}", None)),
        (GH, P(f"«{b64(tv.github('ghs_'))}»", None)),
        (SLACK, P(f"webhook b64 {b64(tv.slack_webhook())}", None)),
    ]
    for cat, c in out:
        if c["values"] == [None]:
            t = c["text"]
            blob = [w for w in t.replace("«", " ").replace("»", " ").split() if len(w) >= 24][0]
            c["values"] = [blob]
    neg = [
        (AWS, N(f"hello {b64('hello world, this is only a test message')}")),
        (AWS, N(f"placeholder {b64('AKIAXXXXXXXXXXXXXXXX')}")),
        (AWS, N(f"docs {b64('AKIAIOSFODNN7EXAMPLE')}")),
        (STRIPE, N(f"test key {b64('sk_test_' + tv.alnum(24))}")),
        (STRIPE, N(f"publishable {b64('pk_live_' + tv.alnum(24))}")),
        (GH, N(f"short {b64('ghp_abc123 is too short to be a token')}")),
        (GH, N("commit 3f786850e387550fdab836ed7e6dc881de23001b3f786850")),
        (GH, N("uuid 550e8400-e29b-41d4-a716-446655440000-550e8400e29b41d4")),
        (GH, N("path /usr/local/share/ca-certificates/permeable/roots")),
        (KEY, N("png iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")),
        (KEY, N(f"public {b64('ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 user@host')}")),
        (KEY, N(f"cert {b64('-----BEGIN CERTIFICATE-----')}")),
        (AWS, N(f"email {b64('contact alice@example.com for access')}")),
        (SLACK, N(f"placeholder {b64('xoxb-000000000000-0000000000000-xxxxxxxxxxxxxxxxxxxxxxxx')}")),
        (GOOG, N(f"placeholder {b64('AIza' + 'a' * 35)}")),
        (JWT, N(f"header only {b64('eyJhbGciOiJIUzI1NiJ9 alone is only a header')}")),
        (AWS, N(f"random {base64.b64encode(bytes(tv.R.randrange(256) for _ in range(48))).decode()}")),
        (AWS, N("a very-long-hyphenated-compound-word-that-goes-on-and-on")),
        (GH, N("snake_case_identifier_that_is_quite_long_indeed")),
        (AWS, N(f"lower {b64('akiaiosfodnn7examplekey lower case')}")),
        (GOOG, N(f"prose {b64('The quick brown fox jumps over the lazy dog')}")),
    ]
    return kind("wrapped", out + neg)

def placeholders():
    # Placeholder-like strings that are real secrets: still reported.
    out = [
        (AWS, P(f"key AKIAEXAMPLE{''.join(tv.R.choice('ABCDEFGHJKLMNPQRSTUVWXYZ234567') for _ in range(9))}", None)),
        (AWS, P(f"key AKIAXXXX{''.join(tv.R.choice('ABCDEFGHJKLMNPQRSTUVWYZ234567') for _ in range(12))}", None)),
        (AWS, P(f"key AKIA1234{''.join(tv.R.choice('ABCDEFGHJKLMNPQRSTUVWXYZ') for _ in range(12))}", None)),
        (AWS, P(f"key ASIA{''.join(tv.R.choice('ABCDEFGHJKLMNPQRSTUVWXYZ') for _ in range(9))}SAMPLES", None)),
        (GH, P(f"token ghp_xxxx{tv.alnum(32)}", None)),
        (GH, P(f"token ghp_example{tv.alnum(29)}", None)),
        (GH, P(f"token ghp_0000{tv.alnum(32)}", None)),
        (GH, P(f"token ghp_{tv.alnum(26)}testtoken1", None)),
        (GH, P(f"token github_pat_{tv.alnum(22)}_test{tv.alnum(55)}", None)),
        (SLACK, P(f"xoxb-000000000001-{tv.digits(13)}-{tv.alnum(24)}", None)),
        (SLACK, P(f"xoxb-{tv.digits(11)}-{tv.digits(13)}-abcd{tv.alnum(20)}", None)),
        (SLACK, P(f"xoxp-{tv.digits(11)}-{tv.digits(11)}-{tv.digits(13)}-{'0' * 16}{tv.alnum(16)}", None)),
        (GOOG, P(f"AIzaSyXXXX{tv.alnum(29)}", None)),
        (GOOG, P(f"AIzaSy{tv.alnum(16)}_test_{tv.alnum(11)}", None)),
        (GOOG, P(f"AIza{tv.alnum(31)}aaaa", None)),
        (STRIPE, P(f"sk_live_{tv.alnum(8)}00000000{tv.alnum(8)}", None)),
        (STRIPE, P(f"sk_live_example{tv.alnum(20)}", None)),
        (STRIPE, P(f"rk_live_{tv.alnum(12)}xxxxxxxx{tv.alnum(12)}", None)),
        (STRIPE, P(f"sk_live_1234{tv.alnum(20)}", None)),
        (JWT, P(f"my token {tv.jwt(payload={'sub': '1234567890', 'name': 'John Doe', 'iat': 1516239022})}", None)),
        (AWS, P(f"AKIA{''.join(tv.R.choice('ABCDEFGHIJKLMNOPQRSTUVWXYZ234567') for _ in range(12))}TEST in the log", None)),
    ]
    import re
    pat = re.compile(r"(AKIA\w{16}|ASIA\w{16}|github_pat_\w+|gh[pousr]_\w+|xox[bp]-[\w-]+|AIza[\w-]{35}|[sr]k_live_\w+|eyJ[\w-]+\.[\w-]+\.[\w-]+)")
    for cat, c in out:
        c["values"] = [pat.search(c["text"]).group(1)]
    neg = [
        (GH, N("ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")),
        (AWS, N("AKIAXXXXXXXXXXXXXXXX")),
        (GOOG, N("AIzaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")),
        (SLACK, N("xoxp-000000000000-000000000000-000000000000-00000000000000000000000000000000")),
        (SLACK, N("xoxb-xxxxxxxxxxxx-xxxxxxxxxxxxx-xxxxxxxxxxxxxxxxxxxxxxxx")),
        (AWS, N("key AKIAIOSFODNN7EXAMPLE in the config")),
        (AWS, N("AKIAI44QH8DHBEXAMPLE is the other doc example")),
        (AWS, N("temporary ASIAIOSFODNN7EXAMPLE from the STS docs")),
        (AWS, N("AKIA1234567890ABCDEF in the template")),
        (AWS, N("AKIAABCDABCDABCDABCD")),
        (JWT, N("the jwt.io sample eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")),
        (STRIPE, N("sk_live_xxxxxxxxxxxxxxxxxxxxxxxx")),
        (STRIPE, N("sk_live_1234567890abcdef1234")),
        (STRIPE, N("rk_live_aaaaaaaaaaaaaaaaaaaaaaaa")),
        (GH, N("ghp_1234567890abcdef1234567890abcdef12345678")),
        (GH, N("github_pat_" + "x" * 22 + "_" + "x" * 59)),
        (GH, N("ghs_000000000000000000000000000000000000")),
        (SLACK, N("xoxb-1234567890-1234567890123-abcdefghijklmnopqrstuvwx")),
        (SLACK, N("https://hooks.slack.com/services/TXXXXXXXX/BXXXXXXXXXX/XXXXXXXXXXXXXXXXXXXXXXXX")),
        (GOOG, N("AIzaSyXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX")),
        (GOOG, N("AIzaSyA-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_ weird but not a key")),
    ]
    return kind("placeholders", out + neg)

KINDS = [normalised, numbers, case, separators, tags, suffixes, confusables, wrapped, placeholders]
