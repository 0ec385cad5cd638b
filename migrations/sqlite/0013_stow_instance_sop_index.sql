-- A STOW-RS RT Structure Set without an RT Referenced Series is routed to the series
-- holding the CT instance its contours reference (found by SOPInstanceUID).
CREATE INDEX stow_instances_sop ON stow_instances (sop_instance_uid);
