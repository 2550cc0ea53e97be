"""The patients capability's public module: the registry, matching a bot's patient to a record,
and patients' sign-in links. Other packages import from here only."""

from shared.patients.documents import PatientDocument
from shared.patients.identity import Link, LinkCode, LinkRequest
from shared.patients.links import IssuedCode, PatientLinks, linked_patient
from shared.patients.matching import PatientMatch, PatientMatcher, index_patient, patients_with_phone
from shared.patients.merging import check_merge, mark_merged, settle_merge, survivor_of
from shared.patients.model import (
    LanguageTag,
    PatientIdentity,
    PatientProfile,
    PatientRecord,
    check_patient_id,
)
from shared.patients.registry import (
    PatientRegistry,
    Stored,
    patient_exists,
    profile_changes,
    profile_of,
    record_changes,
    record_of,
)

__all__ = [
    "IssuedCode",
    "LanguageTag",
    "Link",
    "LinkCode",
    "LinkRequest",
    "PatientDocument",
    "PatientIdentity",
    "PatientLinks",
    "PatientMatch",
    "PatientMatcher",
    "PatientProfile",
    "PatientRecord",
    "PatientRegistry",
    "Stored",
    "check_merge",
    "check_patient_id",
    "index_patient",
    "linked_patient",
    "mark_merged",
    "patient_exists",
    "patients_with_phone",
    "profile_changes",
    "profile_of",
    "record_changes",
    "record_of",
    "settle_merge",
    "survivor_of",
]
