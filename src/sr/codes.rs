//! The coded concepts of the measurement report: DICOM (DCM), SNOMED CT (SCT), UCUM units,
//! the IBSI feature identifiers that DICOM registers (coding scheme `IBSI`), and radscore's
//! private scheme `99RADSCORE` for what no public scheme defines.
//!
//! Every public code here is as listed in DICOM PS3.16 (the `IBSI` codes are those of
//! PS3.16's IBSI context groups, CID 7468–7477 and others; the SNOMED CT codes those of
//! CID 7151/6300 body structures); `tests/support/sr_check.py` checks each emitted public
//! code and meaning against pydicom's copy of the PS3.16 concept dictionary.

use crate::features::Location;

/// A coded concept (PS3.3 Table 8.8-1, Code Sequence Macro).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code {
    /// Code Value; longer than 16 characters goes to Long Code Value (PS3.3 8.8).
    pub value: &'static str,
    /// Coding Scheme Designator.
    pub scheme: &'static str,
    /// Code Meaning.
    pub meaning: &'static str,
}

const fn code(value: &'static str, scheme: &'static str, meaning: &'static str) -> Code {
    Code {
        value,
        scheme,
        meaning,
    }
}

/// radscore's private coding scheme designator (PS3.16 8.2: `99` prefix for private
/// schemes).
pub const PRIVATE_SCHEME: &str = "99RADSCORE";
/// Name of the private coding scheme, in the Coding Scheme Identification Sequence.
pub const PRIVATE_SCHEME_NAME: &str = "radscore private codes";

// TID 1500 / 1411 / 1001 / 4019 structure (PS3.16, all DCM).
pub const IMAGING_MEASUREMENT_REPORT: Code = code("126000", "DCM", "Imaging Measurement Report");
pub const LANGUAGE_OF_CONTENT: Code =
    code("121049", "DCM", "Language of Content Item and Descendants");
pub const ENGLISH_US: Code = code("en-US", "RFC5646", "English (United States)");
pub const OBSERVER_TYPE: Code = code("121005", "DCM", "Observer Type");
pub const DEVICE: Code = code("121007", "DCM", "Device");
pub const DEVICE_OBSERVER_UID: Code = code("121012", "DCM", "Device Observer UID");
pub const DEVICE_OBSERVER_NAME: Code = code("121013", "DCM", "Device Observer Name");
pub const DEVICE_OBSERVER_MANUFACTURER: Code =
    code("121014", "DCM", "Device Observer Manufacturer");
pub const PROCEDURE_REPORTED: Code = code("121058", "DCM", "Procedure reported");
pub const COMPUTED_TOMOGRAPHY: Code = code("77477000", "SCT", "Computed tomography");
pub const IMAGE_LIBRARY: Code = code("111028", "DCM", "Image Library");
pub const IMAGE_LIBRARY_GROUP: Code = code("126200", "DCM", "Image Library Group");
pub const IMAGING_MEASUREMENTS: Code = code("126010", "DCM", "Imaging Measurements");
pub const MEASUREMENT_GROUP: Code = code("125007", "DCM", "Measurement Group");
pub const TRACKING_IDENTIFIER: Code = code("112039", "DCM", "Tracking Identifier");
pub const TRACKING_UNIQUE_IDENTIFIER: Code = code("112040", "DCM", "Tracking Unique Identifier");
pub const FINDING: Code = code("121071", "DCM", "Finding");
pub const NEOPLASM: Code = code("108369006", "SCT", "Neoplasm");
pub const FINDING_SITE: Code = code("363698007", "SCT", "Finding Site");
pub const REFERENCED_SEGMENT: Code = code("121191", "DCM", "Referenced Segment");
pub const SOURCE_SERIES_FOR_SEGMENTATION: Code =
    code("121232", "DCM", "Source series for segmentation");
pub const REGION_IN_SPACE: Code = code("130488", "DCM", "Region in Space");
pub const ALGORITHM_NAME: Code = code("111001", "DCM", "Algorithm Name");
pub const ALGORITHM_VERSION: Code = code("111003", "DCM", "Algorithm Version");
pub const ALGORITHM_PARAMETERS: Code = code("111002", "DCM", "Algorithm Parameters");
pub const DERIVATION: Code = code("121401", "DCM", "Derivation");

/// The model's response probability of a lesion; no public code exists for it.
pub const RESPONSE_PROBABILITY: Code = code(
    "RESPPROB",
    PRIVATE_SCHEME,
    "Probability of treatment response",
);

// UCUM units (PS3.16 CID 7181 and UCUM itself).
pub const NO_UNITS: Code = code("1", "UCUM", "no units");
pub const CUBIC_MILLIMETER: Code = code("mm3", "UCUM", "cubic millimeter");
pub const SQUARE_MILLIMETER: Code = code("mm2", "UCUM", "square millimeter");
pub const MILLIMETER: Code = code("mm", "UCUM", "mm");
pub const PER_MILLIMETER: Code = code("/mm", "UCUM", "per millimeter");
pub const HOUNSFIELD_UNIT: Code = code("[hnsf'U]", "UCUM", "Hounsfield unit");
pub const HOUNSFIELD_UNIT_SQUARED: Code = code("[hnsf'U]2", "UCUM", "Hounsfield unit squared");
pub const HU_CUBIC_MILLIMETER: Code =
    code("[hnsf'U].mm3", "UCUM", "Hounsfield unit cubic millimeter");

/// The finding site of a lesion location (SNOMED CT body structures, as in PS3.16);
/// `None` for `other`, which names no structure.
///
/// | location | SNOMED CT | meaning |
/// |---|---|---|
/// | pleura | 3120008 | Pleural membrane structure |
/// | lymph_node | 59441001 | Structure of lymph node |
/// | peritoneum | 15425007 | Peritoneum (serous membrane) structure |
/// | soft_tissue | 87784001 | Soft tissues |
pub fn finding_site(location: Location) -> Option<Code> {
    match location {
        Location::Pleura => Some(code("3120008", "SCT", "Pleural membrane structure")),
        Location::LymphNode => Some(code("59441001", "SCT", "Structure of lymph node")),
        Location::Peritoneum => Some(code(
            "15425007",
            "SCT",
            "Peritoneum (serous membrane) structure",
        )),
        Location::SoftTissue => Some(code("87784001", "SCT", "Soft tissues")),
        Location::Other => None,
    }
}

/// One feature stem (the IBSI tag without aggregation) with its IBSI identifier as
/// registered in DICOM PS3.16 (coding scheme `IBSI`) and the unit of its value.
struct FeatureCode {
    stem: &'static str,
    ibsi: Option<(&'static str, &'static str)>,
    unit: Code,
}

const fn ibsi(
    stem: &'static str,
    id: &'static str,
    meaning: &'static str,
    unit: Code,
) -> FeatureCode {
    FeatureCode {
        stem,
        ibsi: Some((id, meaning)),
        unit,
    }
}

/// A stem that DICOM's IBSI codes do not cover (the intensity statistics): private code.
const fn private(stem: &'static str, unit: Code) -> FeatureCode {
    FeatureCode {
        stem,
        ibsi: None,
        unit,
    }
}

/// Every feature stem radscore's bundled settings produce, with its code and unit. IBSI
/// identifiers from the IBSI 1 manual (chapter 3) as registered in PS3.16.
// LIMITATION: intensity statistics (stat_*) have IBSI identifiers that PS3.16 does not
// register, so they are coded in 99RADSCORE by tag; so is any stem not listed here.
const FEATURES: &[FeatureCode] = &[
    ibsi("morph_volume", "RNU0", "Volume of Mesh", CUBIC_MILLIMETER),
    ibsi(
        "morph_vol_approx",
        "YEKZ",
        "Volume from Voxel Summation",
        CUBIC_MILLIMETER,
    ),
    ibsi(
        "morph_area_mesh",
        "C0JK",
        "Surface Area of Mesh",
        SQUARE_MILLIMETER,
    ),
    ibsi(
        "morph_av",
        "2PR5",
        "Surface to Volume Ratio",
        PER_MILLIMETER,
    ),
    ibsi("morph_comp_1", "SKGS", "Compactness 1", NO_UNITS),
    ibsi("morph_comp_2", "BQWJ", "Compactness 2", NO_UNITS),
    ibsi(
        "morph_sph_dispr",
        "KRCK",
        "Spherical Disproportion",
        NO_UNITS,
    ),
    ibsi("morph_sphericity", "QCFX", "Sphericity", NO_UNITS),
    ibsi("morph_asphericity", "25C7", "Asphericity", NO_UNITS),
    ibsi("morph_com", "KLMA", "Centre of Mass Shift", MILLIMETER),
    ibsi(
        "morph_diam",
        "L0JK",
        "Maximum 3D Diameter of a Mesh",
        MILLIMETER,
    ),
    ibsi(
        "morph_pca_maj_axis",
        "TDIC",
        "Major Axis in 3D Length",
        MILLIMETER,
    ),
    ibsi(
        "morph_pca_min_axis",
        "P9VJ",
        "Minor Axis in 3D Length",
        MILLIMETER,
    ),
    ibsi(
        "morph_pca_least_axis",
        "7J51",
        "Least Axis in 3D Length",
        MILLIMETER,
    ),
    ibsi("morph_pca_elongation", "Q3CK", "Elongation", NO_UNITS),
    ibsi("morph_pca_flatness", "N17B", "Flatness", NO_UNITS),
    ibsi(
        "morph_vol_dens_aabb",
        "PBX1",
        "Volume Density in Frame of Reference Axis Aligned Bounding Box",
        NO_UNITS,
    ),
    ibsi(
        "morph_area_dens_aabb",
        "R59B",
        "Area Density in Frame of Reference Axis Aligned Bounding Box",
        NO_UNITS,
    ),
    ibsi(
        "morph_vol_dens_ombb",
        "ZH1A",
        "Volume Density in Oriented Minimum Bounding Box",
        NO_UNITS,
    ),
    ibsi(
        "morph_area_dens_ombb",
        "IQYR",
        "Area Density in Oriented Minimum Bounding Box",
        NO_UNITS,
    ),
    ibsi(
        "morph_vol_dens_aee",
        "6BDE",
        "Volume Density in Approximate Enclosing Ellipsoid",
        NO_UNITS,
    ),
    ibsi(
        "morph_area_dens_aee",
        "RDD2",
        "Area Density in Approximate Enclosing Ellipsoid",
        NO_UNITS,
    ),
    ibsi(
        "morph_vol_dens_mvee",
        "SWZ1",
        "Volume Density in Minimum Volume Enclosing Ellipsoid",
        NO_UNITS,
    ),
    ibsi(
        "morph_area_dens_mvee",
        "BRI8",
        "Area Density in Minimum Volume Enclosing Ellipsoid",
        NO_UNITS,
    ),
    ibsi(
        "morph_vol_dens_conv_hull",
        "R3ER",
        "Volume Density in Convex Hull",
        NO_UNITS,
    ),
    ibsi(
        "morph_area_dens_conv_hull",
        "7T7F",
        "Area Density in Convex Hull",
        NO_UNITS,
    ),
    ibsi(
        "morph_integ_int",
        "99N0",
        "Integrated Intensity",
        HU_CUBIC_MILLIMETER,
    ),
    ibsi("morph_moran_i", "N365", "Moran's I Index", NO_UNITS),
    ibsi("morph_geary_c", "NPT7", "Geary's C Measure", NO_UNITS),
    private("stat_mean", HOUNSFIELD_UNIT),
    private("stat_var", HOUNSFIELD_UNIT_SQUARED),
    private("stat_skew", NO_UNITS),
    private("stat_kurt", NO_UNITS),
    private("stat_median", HOUNSFIELD_UNIT),
    private("stat_min", HOUNSFIELD_UNIT),
    private("stat_p10", HOUNSFIELD_UNIT),
    private("stat_p90", HOUNSFIELD_UNIT),
    private("stat_max", HOUNSFIELD_UNIT),
    private("stat_iqr", HOUNSFIELD_UNIT),
    private("stat_range", HOUNSFIELD_UNIT),
    private("stat_mad", HOUNSFIELD_UNIT),
    private("stat_rmad", HOUNSFIELD_UNIT),
    private("stat_medad", HOUNSFIELD_UNIT),
    private("stat_cov", NO_UNITS),
    private("stat_qcod", NO_UNITS),
    private("stat_energy", HOUNSFIELD_UNIT_SQUARED),
    private("stat_rms", HOUNSFIELD_UNIT),
    ibsi("cm_joint_max", "GYBY", "Joint Maximum of GLCM", NO_UNITS),
    ibsi("cm_joint_avg", "60VM", "Joint Average of GLCM", NO_UNITS),
    ibsi("cm_joint_var", "UR99", "Joint Variance of GLCM", NO_UNITS),
    ibsi("cm_joint_entr", "TU9B", "Joint Entropy of GLCM", NO_UNITS),
    ibsi(
        "cm_diff_avg",
        "TF7R",
        "Difference Average of GLCM",
        NO_UNITS,
    ),
    ibsi(
        "cm_diff_var",
        "D3YU",
        "Difference Variance of GLCM",
        NO_UNITS,
    ),
    ibsi(
        "cm_diff_entr",
        "NTRS",
        "Difference Entropy of GLCM",
        NO_UNITS,
    ),
    ibsi("cm_sum_avg", "ZGXS", "Sum Average of GLCM", NO_UNITS),
    ibsi("cm_sum_var", "OEEB", "Sum Variance of GLCM", NO_UNITS),
    ibsi("cm_sum_entr", "P6QZ", "Sum Entropy of GLCM", NO_UNITS),
    ibsi(
        "cm_energy",
        "8ZQL",
        "Angular Second Moment of GLCM",
        NO_UNITS,
    ),
    ibsi("cm_contrast", "ACUI", "Contrast of GLCM", NO_UNITS),
    ibsi(
        "cm_dissimilarity",
        "8S9J",
        "Dissimilarity of GLCM",
        NO_UNITS,
    ),
    ibsi(
        "cm_inv_diff",
        "IB1Z",
        "Inverse Difference of GLCM",
        NO_UNITS,
    ),
    ibsi(
        "cm_inv_diff_norm",
        "NDRX",
        "Normalized Inverse Difference of GLCM",
        NO_UNITS,
    ),
    ibsi(
        "cm_inv_diff_mom",
        "WF0Z",
        "Inverse Difference Moment of GLCM",
        NO_UNITS,
    ),
    ibsi(
        "cm_inv_diff_mom_norm",
        "1QCO",
        "Normalized Inverse Difference Moment of GLCM",
        NO_UNITS,
    ),
    ibsi("cm_inv_var", "E8JP", "Inverse Variance of GLCM", NO_UNITS),
    ibsi("cm_corr", "NI2N", "Correlation of GLCM", NO_UNITS),
    ibsi("cm_auto_corr", "QWB0", "Autocorrelation of GLCM", NO_UNITS),
    ibsi(
        "cm_clust_tend",
        "DG8W",
        "Cluster Tendency of GLCM",
        NO_UNITS,
    ),
    ibsi("cm_clust_shade", "7NFM", "Cluster Shade of GLCM", NO_UNITS),
    ibsi(
        "cm_clust_prom",
        "AE86",
        "Cluster Prominence of GLCM",
        NO_UNITS,
    ),
    ibsi(
        "cm_info_corr1",
        "R8DG",
        "First Measure of Information Correlation of GLCM",
        NO_UNITS,
    ),
    ibsi(
        "cm_info_corr2",
        "JN9H",
        "Second Measure of Information Correlation of GLCM",
        NO_UNITS,
    ),
    ibsi("ngt_coarseness", "QCDE", "Coarseness of NGTDM", NO_UNITS),
    ibsi("ngt_contrast", "65HE", "Contrast of NGTDM", NO_UNITS),
    ibsi("ngt_busyness", "NQ30", "Busyness of NGTDM", NO_UNITS),
    ibsi("ngt_complexity", "HDEZ", "Complexity of NGTDM", NO_UNITS),
    ibsi("ngt_strength", "1X9X", "Strength of NGTDM", NO_UNITS),
];

/// IBSI aggregation suffixes of texture tags (IBSI 1 section 3.6.1), longest first so that
/// `3D_avg` is not taken for `3D`.
const AGGREGATIONS: &[(&str, &str)] = &[
    ("2_5D_avg", "2.5D, features averaged over directions"),
    ("2_5D_comb", "2.5D, matrices merged over directions"),
    ("3D_avg", "3D, features averaged over directions"),
    ("3D_comb", "3D, matrices merged over directions"),
    ("2D_avg", "2D, features averaged over slices and directions"),
    ("2D_comb", "2D, matrices merged per slice"),
    ("2_5D", "2.5D, one matrix"),
    ("3D", "3D, one matrix"),
];

/// How a feature value is coded: its concept, its unit and, for texture features, the
/// aggregation as a Derivation modifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureConcept {
    /// IBSI code where PS3.16 registers one, else the private code (value = the tag).
    pub name: OwnedCode,
    pub unit: Code,
    /// The aggregation (private code whose value is the tag suffix), when the tag has one.
    pub derivation: Option<OwnedCode>,
}

/// A code whose value may be built at run time (private codes named by a tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedCode {
    pub value: String,
    pub scheme: String,
    pub meaning: String,
}

impl From<Code> for OwnedCode {
    fn from(c: Code) -> Self {
        OwnedCode {
            value: c.value.into(),
            scheme: c.scheme.into(),
            meaning: c.meaning.into(),
        }
    }
}

/// The concept of the feature named `tag` (an IBSI / MIRP tag such as `cm_contrast_3D_avg`).
pub fn feature_concept(tag: &str) -> FeatureConcept {
    let (stem, derivation) = AGGREGATIONS
        .iter()
        .find_map(|(suffix, meaning)| {
            let stem = tag.strip_suffix(suffix)?.strip_suffix('_')?;
            Some((
                stem,
                Some(OwnedCode {
                    value: (*suffix).into(),
                    scheme: PRIVATE_SCHEME.into(),
                    meaning: (*meaning).into(),
                }),
            ))
        })
        .unwrap_or((tag, None));
    let known = FEATURES.iter().find(|f| f.stem == stem);
    let name = match known.and_then(|f| f.ibsi) {
        Some((id, meaning)) => OwnedCode {
            value: id.into(),
            scheme: "IBSI".into(),
            meaning: meaning.into(),
        },
        None => OwnedCode {
            value: stem.into(),
            scheme: PRIVATE_SCHEME.into(),
            meaning: format!("radiomics feature {stem}"),
        },
    };
    FeatureConcept {
        name,
        unit: known.map_or(NO_UNITS, |f| f.unit),
        derivation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texture_tags_split_into_ibsi_code_and_aggregation() {
        let c = feature_concept("cm_contrast_3D_avg");
        assert_eq!(c.name.value, "ACUI");
        assert_eq!(c.name.scheme, "IBSI");
        assert_eq!(c.derivation.unwrap().value, "3D_avg");
        let c = feature_concept("cm_inv_diff_mom_norm_3D_comb");
        assert_eq!(c.name.value, "1QCO");
        assert_eq!(c.derivation.unwrap().value, "3D_comb");
    }

    #[test]
    fn morphology_has_units_and_no_aggregation() {
        let c = feature_concept("morph_volume");
        assert_eq!((c.name.value.as_str(), c.unit), ("RNU0", CUBIC_MILLIMETER));
        assert!(c.derivation.is_none());
    }

    #[test]
    fn unknown_and_statistics_tags_are_private() {
        let c = feature_concept("stat_mean");
        assert_eq!(c.name.scheme, PRIVATE_SCHEME);
        assert_eq!(c.name.value, "stat_mean");
        assert_eq!(c.unit, HOUNSFIELD_UNIT);
        let c = feature_concept("rlm_sre_3D_avg");
        assert_eq!(c.name.value, "rlm_sre");
        assert_eq!(c.unit, NO_UNITS);
    }

    #[test]
    fn every_stem_is_listed_once() {
        let mut stems: Vec<&str> = FEATURES.iter().map(|f| f.stem).collect();
        stems.sort_unstable();
        let n = stems.len();
        stems.dedup();
        assert_eq!(stems.len(), n);
    }
}
