"""exportjob: the ExportJob API model, export engine, and Kubernetes operator."""
