"""Made-up patients. Every name, ID and date here is invented."""

from __future__ import annotations

from dataclasses import dataclass

INSTITUTION = "CHU Ibn Rochd"
ARABIC_NAME = "مريض تجريبي"  # "test patient"

FAMILY_NAMES = ["Testpatient", "Synthetique", "Fictive", "Exemplaire", "Essai"]
GIVEN_NAMES = ["Fatima", "Youssef", "Khadija", "Omar", "Salma", "Karim", "Amina"]


@dataclass(frozen=True)
class Identity:
    """A made-up patient, and the forms in which its identity shows up in pixels."""

    family: str
    given: str
    patient_id: str
    birth_date: str  # YYYYMMDD

    @property
    def patient_name(self) -> str:
        return f"{self.family}^{self.given}"

    @property
    def display_name(self) -> str:
        """As a device prints it on the image."""
        return f"{self.family} {self.given}"

    @property
    def birth_date_shown(self) -> str:
        """As an ultrasound machine prints it: DD/MM/YYYY."""
        d = self.birth_date
        return f"{d[6:8]}/{d[4:6]}/{d[0:4]}"

    def identifying_values(self) -> list[str]:
        """What must not survive in the pixels (what a pixel clean is told to look for)."""
        d = self.birth_date
        return [
            self.patient_name,
            self.family,
            self.given,
            self.patient_id,
            d,
            self.birth_date_shown,
            f"{d[6:8]}.{d[4:6]}.{d[0:4]}",
            ARABIC_NAME,
            INSTITUTION,
        ]


# The one patient of the pixel tests.
PIXEL_PATIENT = Identity("Testpatient", "Fatima", "99887766", "19610312")


def identity(study: int) -> Identity:
    """The made-up patient of the corpus's study number `study`."""
    return Identity(
        family=FAMILY_NAMES[study % len(FAMILY_NAMES)],
        given=GIVEN_NAMES[study % len(GIVEN_NAMES)],
        patient_id=f"SYN-{study:06d}",
        birth_date=f"19{50 + study % 40:02d}0{1 + study % 9}{10 + study % 18:02d}",
    )
