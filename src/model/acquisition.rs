//! The training envelope of a model's series (manifest `acquisition`): slice thickness,
//! pixel spacing and kVp ranges and the set of convolution kernels the training series
//! had. A series outside it gets a warning per lesion naming the attribute, or, when the
//! manifest's `on_violation` is `refuse`, its lesions are not scored.

use serde::{Deserialize, Serialize};

use super::FeatureRange;
use crate::dicom::acquisition::Acquisition;

/// What to do with a series outside the envelope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnViolation {
    /// Score, and warn per lesion.
    #[default]
    Warn,
    /// Do not score; each lesion says why.
    Refuse,
}

/// The series attributes the training data covered. An absent attribute is not checked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AcquisitionEnvelope {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slice_thickness_mm: Option<FeatureRange>,
    /// Both in-plane spacings must lie in this range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pixel_spacing_mm: Option<FeatureRange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kvp: Option<FeatureRange>,
    /// Kernel names, compared case-insensitively.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub convolution_kernels: Vec<String>,
    #[serde(default)]
    pub on_violation: OnViolation,
}

impl AcquisitionEnvelope {
    /// One message per attribute outside the envelope (or not recorded by the series while
    /// the envelope constrains it), each naming the attribute, the value and the envelope.
    pub fn violations(&self, series: &Acquisition) -> Vec<String> {
        let mut out = Vec::new();
        let mut range =
            |name: &str, unit: &str, value: Option<f64>, envelope: Option<FeatureRange>| {
                let Some(r) = envelope else { return };
                match value {
                None => out.push(format!(
                    "{name} is not recorded in the series; the model was trained on {}–{} {unit}",
                    r.min, r.max
                )),
                Some(v) if v < r.min || v > r.max => out.push(format!(
                    "{name} {v} {unit} is outside the model's training envelope {}–{} {unit}",
                    r.min, r.max
                )),
                Some(_) => {}
            }
            };
        range(
            "slice thickness",
            "mm",
            series.slice_thickness_mm,
            self.slice_thickness_mm,
        );
        let spacing = series.pixel_spacing_mm;
        range(
            "pixel spacing (rows)",
            "mm",
            spacing.map(|s| s[0]),
            self.pixel_spacing_mm,
        );
        range(
            "pixel spacing (columns)",
            "mm",
            spacing.map(|s| s[1]),
            self.pixel_spacing_mm,
        );
        range("kVp", "kV", series.kvp, self.kvp);

        if !self.convolution_kernels.is_empty() {
            let allowed = self.convolution_kernels.join(", ");
            match &series.convolution_kernel {
                None => out.push(format!(
                    "convolution kernel is not recorded in the series; the model was trained \
                     on {allowed}"
                )),
                Some(k)
                    if !self
                        .convolution_kernels
                        .iter()
                        .any(|a| a.eq_ignore_ascii_case(k)) =>
                {
                    out.push(format!(
                        "convolution kernel '{k}' is not one the model was trained on ({allowed})"
                    ));
                }
                Some(_) => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> AcquisitionEnvelope {
        AcquisitionEnvelope {
            slice_thickness_mm: Some(FeatureRange { min: 1.0, max: 3.0 }),
            pixel_spacing_mm: Some(FeatureRange { min: 0.5, max: 1.0 }),
            kvp: Some(FeatureRange {
                min: 100.0,
                max: 140.0,
            }),
            convolution_kernels: vec!["B30f".into()],
            on_violation: OnViolation::Warn,
        }
    }

    #[test]
    fn a_series_inside_the_envelope_has_no_violation() {
        let series = Acquisition {
            slice_thickness_mm: Some(2.0),
            pixel_spacing_mm: Some([0.7, 0.7]),
            convolution_kernel: Some("b30F".into()),
            kvp: Some(120.0),
        };
        assert!(envelope().violations(&series).is_empty());
        assert!(
            AcquisitionEnvelope::default()
                .violations(&Acquisition::default())
                .is_empty()
        );
    }

    #[test]
    fn each_attribute_outside_is_named() {
        let series = Acquisition {
            slice_thickness_mm: Some(5.0),
            pixel_spacing_mm: Some([0.7, 1.5]),
            convolution_kernel: Some("FC13".into()),
            kvp: None,
        };
        let v = envelope().violations(&series);
        assert_eq!(v.len(), 4, "{v:?}");
        assert!(v[0].starts_with("slice thickness 5 mm is outside"), "{v:?}");
        assert!(v[1].starts_with("pixel spacing (columns) 1.5 mm"), "{v:?}");
        assert!(v[2].starts_with("kVp is not recorded"), "{v:?}");
        assert!(v[3].contains("'FC13'") && v[3].contains("B30f"), "{v:?}");
    }
}
