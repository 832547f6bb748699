this is not netCDF
