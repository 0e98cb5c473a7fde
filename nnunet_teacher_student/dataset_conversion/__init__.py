"""dataset_conversion: public datasets and users' folders -> nnU-Net raw data (masks) or weak sets (boxes).

Converters (each also an ``nnts convert`` subcommand):
``msd_lung.convert_msd_lung``, ``nsclc_radiomics.convert_nsclc_radiomics``,
``lung_pet_ct_dx.convert_lung_pet_ct_dx``, ``folder.convert_folder``; each takes the
``settings.ConversionSettings`` they share (output, overwrite, workers, split).
Building blocks: ``dicom_series`` (find/read DICOM series), ``dicom_labels`` (RTSTRUCT via rt-utils,
DICOM-SEG via highdicom), ``voc_xml`` (safe PASCAL-VOC parsing), ``masks`` (masks onto CT voxels),
``outputs`` (output folders and the resume rule), ``runner`` (parallel runs and summaries),
``splits`` (patient-stratified split and manifest).
"""
