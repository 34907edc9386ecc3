"""Data sources (simulator, FITS, HDF5, image folders, hub), all yielding ``SurveyData``."""
